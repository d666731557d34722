/**
 * Runs `main.ts dev` as a child process, for tests and scripts that need a real relay
 * they can kill: resolves once it logs "relay listening" and keeps every log line.
 */

/** A running relay process. */
export interface RelayProcess {
  child: Deno.ChildProcess;
  /** Every JSON log line written so far. */
  lines: string[];
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  url: string;
}

/**
 * Starts `main.ts dev` with `env` added to the environment.
 *
 * @param env Variables for the relay (`RELAY_KV_PATH`, `RELAY_SIGNING_SECRET`, …).
 * @returns The process once it listens.
 * @throws {Error} With the relay's output when it exits before listening.
 */
export async function spawnRelay(
  env: Record<string, string>,
): Promise<RelayProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../main.ts", import.meta.url).pathname, "dev"],
    env: { PORT: "0", NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines: string[] = [];
  const url = await watchLogLines(child.stdout, lines);
  return { child, lines, url };
}

/**
 * Reads a relay's stdout into `lines` (and keeps reading after it resolves). Lines
 * that are not JSON, e.g. a library's `console.log`, are kept and otherwise skipped.
 *
 * @param stdout The relay's standard output.
 * @param lines Receives every line.
 * @returns The URL from the "relay listening" log line.
 * @throws {Error} With the output so far when the stream ends before that line.
 */
export function watchLogLines(
  stdout: ReadableStream<Uint8Array>,
  lines: string[],
): Promise<string> {
  const listening = Promise.withResolvers<string>();
  (async () => {
    let buffer = "";
    for await (const chunk of stdout.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      const parts = buffer.split("\n");
      buffer = parts.pop()!;
      for (const line of parts) {
        lines.push(line);
        const parsed = _parseJson(line);
        if (parsed?.msg === "relay listening") {
          listening.resolve(String(parsed.url));
        }
      }
    }
    listening.reject(
      new Error(`relay exited before listening:\n${lines.join("\n")}`),
    );
  })().catch(listening.reject);
  return listening.promise;
}

function _parseJson(line: string): Record<string, unknown> | undefined {
  try {
    const parsed = JSON.parse(line);
    return typeof parsed === "object" && parsed !== null ? parsed : undefined;
  } catch {
    return undefined;
  }
}
