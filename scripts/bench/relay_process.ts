/**
 * Runs this repo's relay (`main.ts dev`) as its own process on a temp KV file, the way
 * it runs in production, and reads its peak memory from `/proc`. The relay still
 * formats and writes every log line, to /dev/null: reading them back through a pipe
 * would charge the relay for the bench's own work as a log consumer. It runs with the
 * V8 flags of `deno task start` (read from deno.json), as production does.
 */

/** A running relay. */
export interface RelayProcess {
  readonly url: string;
  readonly pid: number;
  /** Peak resident memory so far, in MiB (`VmHWM`), or NaN off Linux. */
  peakRssMb(): Promise<number>;
  /** CPU time used so far, whole and in KV's SQLite threads. */
  cpu(): Promise<CpuTime>;
  /** SIGTERM, wait for exit, remove the temp KV. */
  stop(): Promise<void>;
}

import { type CpuTime, cpuTime } from "./cpu.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** The `--v8-flags=…` argument of deno.json's `start` task, if any. */
async function _startV8Flags(): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  const start = String(config.tasks?.start ?? "");
  return start.split(/\s+/).filter((arg) => arg.startsWith("--v8-flags="));
}

/**
 * Spawns the relay and resolves once it listens.
 *
 * @param env Extra environment (the signing secret, retry schedule, …).
 * @param opts `cpuProfDir` to record a V8 CPU profile of the relay there.
 * @returns The running relay.
 */
export async function spawnRelay(
  env: Record<string, string>,
  opts: { cpuProfDir?: string } = {},
): Promise<RelayProcess> {
  const dir = await Deno.makeTempDir({ prefix: "relay-bench-" });
  const port = freePort();
  const prof = opts.cpuProfDir
    ? ["--cpu-prof", `--cpu-prof-dir=${opts.cpuProfDir}`]
    : [];
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...await _startV8Flags(), ...prof, "main.ts", "dev"],
    cwd: ROOT,
    env: {
      PORT: String(port),
      RELAY_KV_PATH: `${dir}/kv.sqlite3`,
      NO_COLOR: "1",
      ...env,
    },
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const url = `http://127.0.0.1:${port}`;
  await waitListening(`${url}/healthz`);
  return {
    url,
    pid: child.pid,
    async peakRssMb() {
      try {
        const status = await Deno.readTextFile(`/proc/${child.pid}/status`);
        const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]);
        return Math.round(kb / 1024);
      } catch {
        return NaN;
      }
    },
    cpu: () => cpuTime(child.pid),
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/**
 * A port free on 127.0.0.1 right now.
 *
 * @returns The port.
 */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/**
 * Waits until `url` answers 2xx (a spawned server is listening), for up to ~15 s.
 *
 * @param url A URL the server answers.
 * @throws {Error} When it never does.
 */
export async function waitListening(url: string): Promise<void> {
  for (let tries = 0;; tries++) {
    try {
      const res = await fetch(url);
      await res.body?.cancel();
      if (res.ok) return;
    } catch (err) {
      if (tries > 300) {
        throw new Error(`nothing listened at ${url}`, { cause: err });
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
