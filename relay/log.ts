/** Structured logging: one JSON line per decision, never a secret or a payload body. */

/** Fields attached to a log line. */
export type LogFields = Record<string, unknown>;

/** The logger every module receives. */
export interface Logger {
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

/**
 * Creates a logger that writes JSON lines.
 *
 * @param write Receives each line; defaults to standard output (buffered for one
 *   turn of the event loop).
 * @param now Clock for the `ts` field.
 * @returns The logger.
 */
export function createLogger(
  write: (line: string) => void = _stdout,
  now: () => number = Date.now,
): Logger {
  const emit = (level: string) => (msg: string, fields: LogFields = {}) =>
    write(
      JSON.stringify({
        ts: new Date(now()).toISOString(),
        level,
        msg,
        ...fields,
      }),
    );
  return { info: emit("info"), warn: emit("warn"), error: emit("error") };
}

// Standard output is written once per turn of the event loop, not once per line: a
// write per line cost about a tenth of a millisecond per delivery (`deno task bench`).
// Lines still buffered when the process is killed are lost; at exit, and before an
// uncaught error ends it, they are flushed.
const _encoder = new TextEncoder();
let _buffered: string[] = [];
let _flushTimer: ReturnType<typeof setTimeout> | undefined;

function _stdout(line: string) {
  _buffered.push(line);
  if (_buffered.length >= 1000) _flush();
  else _flushTimer ??= setTimeout(_flush, 0);
}

function _flush() {
  clearTimeout(_flushTimer);
  _flushTimer = undefined;
  if (_buffered.length === 0) return;
  const bytes = _encoder.encode(_buffered.join("\n") + "\n");
  _buffered = [];
  for (let at = 0; at < bytes.length;) {
    at += Deno.stdout.writeSync(bytes.subarray(at));
  }
}

for (const event of ["unload", "error", "unhandledrejection"]) {
  globalThis.addEventListener(event, _flush);
}
