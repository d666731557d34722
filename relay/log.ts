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
 * @param write Receives each line; defaults to standard output.
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

function _stdout(line: string) {
  // deno-lint-ignore no-console
  console.log(line);
}
