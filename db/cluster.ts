/**
 * A throwaway PostgreSQL cluster (initdb + pg_ctl in a temp dir) for tests and
 * `deno task flow` when no `DATABASE_URL` is given. As root, the server runs as the
 * `postgres` user, since PostgreSQL refuses to run as root.
 */

/** A running cluster, stopped and removed on dispose. */
export interface Cluster extends AsyncDisposable {
  /** `postgres://postgres@127.0.0.1:<port>/postgres`. */
  readonly url: string;
  readonly port: number;
  /** Stops the server (fast shutdown); the data dir is kept. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data dir. */
  start(): Promise<void>;
}

/**
 * Finds the PostgreSQL server binaries: `PG_BIN`, else the highest version under
 * `/usr/lib/postgresql/<version>/bin` (Debian/Ubuntu), else `pg_ctl` on `PATH`
 * (symlinks followed, so `initdb` is looked for next to the real `pg_ctl`).
 *
 * @param opts The environment (default: the process's) and the versioned root.
 * @returns The directory holding `initdb` and `pg_ctl`.
 * @throws {Error} When none is installed (tests must fail, not skip, without one).
 */
export function findPgBin(
  opts: { env?: Record<string, string | undefined>; libDir?: string } = {},
): string {
  const env = opts.env ?? Deno.env.toObject();
  const dirs = [
    env.PG_BIN,
    ..._versionDirs(opts.libDir ?? "/usr/lib/postgresql"),
    ...(env.PATH ?? "").split(":"),
  ];
  for (const dir of dirs) {
    const bin = dir ? _serverBin(dir) : undefined;
    if (bin) return bin;
  }
  throw new Error(
    "Cannot start PostgreSQL: set DATABASE_URL, or install PostgreSQL (initdb and pg_ctl in PG_BIN, /usr/lib/postgresql/<version>/bin or on PATH)",
  );
}

/** `<root>/<version>/bin` for each installed version, highest first. */
function _versionDirs(root: string): string[] {
  try {
    return [...Deno.readDirSync(root)]
      .filter((e) => /^\d+(\.\d+)?$/.test(e.name))
      .map((e) => e.name)
      .sort((a, b) => Number(b) - Number(a))
      .map((v) => `${root}/${v}/bin`);
  } catch {
    return [];
  }
}

/** The directory of the real `pg_ctl` in `dir` when `initdb` sits beside it. */
function _serverBin(dir: string): string | undefined {
  try {
    const ctl = Deno.realPathSync(`${dir}/pg_ctl`);
    const bin = ctl.slice(0, ctl.lastIndexOf("/"));
    Deno.statSync(`${bin}/initdb`);
    return bin;
  } catch {
    return undefined;
  }
}

async function _run(cmd: string, args: string[], asPostgres: boolean) {
  const [exe, argv] = asPostgres
    ? ["runuser", ["-u", "postgres", "--", cmd, ...args]]
    : [cmd, args];
  const out = await new Deno.Command(exe, {
    args: argv,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr);
    throw new Error(`Cannot run ${cmd}: ${err.trim()}`);
  }
}

function _freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/**
 * Creates and starts a cluster with trust authentication on 127.0.0.1.
 *
 * @returns The running cluster.
 * @throws {Error} When the binaries are missing or the server does not start.
 */
export async function startCluster(): Promise<Cluster> {
  const bin = findPgBin();
  const asPostgres = Deno.uid() === 0;
  const dir = await Deno.makeTempDir({ prefix: "relay-pg-" });
  if (asPostgres) await _run("chown", ["postgres", dir], false);
  const data = `${dir}/data`;
  const port = _freePort();
  await _run(`${bin}/initdb`, [
    "-D",
    data,
    "-U",
    "postgres",
    "-A",
    "trust",
    "--no-sync",
    "-E",
    "UTF8",
  ], asPostgres);
  const opts =
    `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`;
  const ctl = (args: string[]) =>
    _run(`${bin}/pg_ctl`, ["-D", data, ...args], asPostgres);
  const start = () =>
    ctl(["-o", opts, "-l", `${dir}/log`, "-w", "-t", "30", "start"]);
  await start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    stop: () => ctl(["-m", "fast", "-w", "stop"]),
    start,
    async [Symbol.asyncDispose]() {
      await ctl(["-m", "immediate", "-w", "stop"]).catch(() => {});
      await Deno.remove(dir, { recursive: true });
    },
  };
}
