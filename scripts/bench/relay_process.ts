/**
 * Runs this repo's relay (`main.ts dev`) as its own process on a temp KV file, the way
 * it runs in production, and reads its peak memory from `/proc`.
 */

/** A running relay. */
export interface RelayProcess {
  readonly url: string;
  readonly pid: number;
  /** Peak resident memory so far, in MiB (`VmHWM`), or NaN off Linux. */
  peakRssMb(): Promise<number>;
  /** SIGTERM, wait for exit, remove the temp KV. */
  stop(): Promise<void>;
}

const ROOT = new URL("../../", import.meta.url).pathname;

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
  const prof = opts.cpuProfDir
    ? ["--cpu-prof", `--cpu-prof-dir=${opts.cpuProfDir}`]
    : [];
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...prof, "main.ts", "dev"],
    cwd: ROOT,
    env: {
      PORT: "0",
      RELAY_KV_PATH: `${dir}/kv.sqlite3`,
      NO_COLOR: "1",
      ...env,
    },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const listening = Promise.withResolvers<string>();
  // Drain the JSON log lines (the relay logs each event and attempt) and catch the URL.
  (async () => {
    let buffer = "";
    for await (
      const chunk of child.stdout.pipeThrough(new TextDecoderStream())
    ) {
      buffer += chunk;
      if (!buffer.includes("\n")) continue;
      const lines = buffer.split("\n");
      buffer = lines.pop()!;
      for (const line of lines) {
        if (line.includes('"relay listening"')) {
          listening.resolve(JSON.parse(line).url);
        }
      }
    }
    listening.reject(new Error("relay exited before listening"));
  })();
  const url = await listening.promise;
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
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      await Deno.remove(dir, { recursive: true });
    },
  };
}
