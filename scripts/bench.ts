/**
 * `deno task bench`: the relay side by side with the limit, on this machine, loopback
 * only. Prints a table and one JSON line.
 *
 * - limit:   pre-signed POSTs straight to the receiver (no relay);
 * - naive:   the textbook Deno KV design (`kv.enqueue` + `listenQueue` that POSTs);
 * - passthrough: events to a server that answers 202 and forwards them signed,
 *            storing nothing (the two HTTP hops of any relay, without durability);
 * - relay:   `POST /v1/events` to `main.ts dev` in its own process → verified receipt;
 * - db:      a step completed by SQL in the agent's Postgres → verified receipt, in
 *            notify and poll mode (`DATABASE_URL`'s server, else a throwaway cluster);
 * - backlog: deliveries piled up while the receiver is down, then released.
 *
 * Usage: `deno task bench [--quick] [--n 3000] [--light 200] [--concurrency 32]
 *   [--db-notify 100] [--db-poll 20] [--poll-ms 1000] [--backlog 100000]
 *   [--only limit,naive,passthrough,relay,db,backlog] [--cpu-prof DIR]`
 */
import { parseArgs } from "node:util";
import { runLimit, runNaive } from "./bench/baselines.ts";
import { startBenchReceiver } from "./bench/receiver.ts";
import { runDb } from "./bench/db_phase.ts";
import { runBacklog, runRelay } from "./bench/relay_phases.ts";
import { round } from "./bench/measure.ts";
import { runPassthrough } from "./bench/passthrough.ts";

const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    n: { type: "string" },
    light: { type: "string" },
    concurrency: { type: "string" },
    backlog: { type: "string" },
    "db-notify": { type: "string" },
    "db-poll": { type: "string" },
    "poll-ms": { type: "string" },
    only: { type: "string" },
    "cpu-prof": { type: "string" },
  },
});
const num = (v: string | undefined, fallback: number) => {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) {
    throw new RangeError(`Expected a positive whole number, got "${v}"`);
  }
  return n;
};
const sizes = {
  n: num(flags.n, flags.quick ? 500 : 3000),
  light: num(flags.light, flags.quick ? 50 : 200),
  concurrency: num(flags.concurrency, 32),
  backlog: num(flags.backlog, flags.quick ? 2000 : 100_000),
  db_notify: num(flags["db-notify"], flags.quick ? 20 : 100),
  db_poll: num(flags["db-poll"], flags.quick ? 8 : 20),
  poll_ms: num(flags["poll-ms"], 1000),
};
const only = new Set(
  (flags.only ?? "limit,naive,passthrough,relay,db,backlog").split(",").map((
    s,
  ) => s.trim()),
);
const timeoutMs = 600_000;
const opts = { secret: SECRET, ...sizes, timeoutMs };

const receiver = startBenchReceiver(SECRET);
const log = (msg: string) =>
  Deno.stderr.writeSync(new TextEncoder().encode(`bench: ${msg}\n`));
async function phase<T>(name: string, run: () => Promise<T>) {
  if (!only.has(name)) return null;
  log(`${name}…`);
  return await run();
}

try {
  log(`sizes ${JSON.stringify(sizes)}`);
  const limit = await phase("limit", () => runLimit(receiver, opts));
  const naive = await phase("naive", () => runNaive(receiver, opts));
  const passthrough = await phase(
    "passthrough",
    () => runPassthrough(receiver, opts),
  );
  const relay = await phase(
    "relay",
    () => runRelay(receiver, { ...opts, cpuProfDir: flags["cpu-prof"] }),
  );
  const db = await phase("db", () =>
    runDb(receiver, {
      secret: SECRET,
      notify: sizes.db_notify,
      poll: sizes.db_poll,
      pollMs: sizes.poll_ms,
      timeoutMs,
    }));
  const backlog = await phase(
    "backlog",
    () => runBacklog(receiver, { ...opts, n: sizes.backlog }),
  );
  if (receiver.rejected() > 0) {
    throw new Error(`${receiver.rejected()} deliveries failed verification`);
  }

  const ratio = (a?: number, b?: number) =>
    a !== undefined && b !== undefined ? round(a / b, 2) : null;
  const rows: string[][] = [[
    "phase",
    "deliveries/s",
    "light p50 ms",
    "light p99 ms",
    "load p50 ms",
    "load p99 ms",
    "peak RSS MB",
  ]];
  const baselines = [
    ["limit", limit],
    ["naive", naive],
    ["passthrough", passthrough],
  ] as const;
  for (const [name, r] of baselines) {
    if (!r) continue;
    rows.push([
      name,
      String(r.load.per_second),
      String(r.light.p50_ms),
      String(r.light.p99_ms),
      String(r.load.p50_ms),
      String(r.load.p99_ms),
      "",
    ]);
  }
  if (relay) {
    rows.push([
      "relay",
      String(relay.load.per_second),
      String(relay.light.p50_ms),
      String(relay.light.p99_ms),
      String(relay.load.p50_ms),
      String(relay.load.p99_ms),
      String(relay.peak_rss_mb),
    ]);
  }
  if (db) {
    for (const mode of ["notify", "poll"] as const) {
      rows.push([
        `db ${mode}`,
        "",
        String(db[mode].p50_ms),
        String(db[mode].p99_ms),
        "",
        "",
        "",
      ]);
    }
  }
  if (backlog) {
    rows.push([
      `backlog ${backlog.n}`,
      `${backlog.drain_per_second} (drain)`,
      "",
      "",
      "",
      "",
      String(backlog.peak_rss_mb),
    ]);
  }
  const widths = rows[0]!.map((_, i) =>
    Math.max(...rows.map((r) => (r[i] ?? "").length))
  );
  const out = rows.map((r) =>
    r.map((c, i) => c.padEnd(i === r.length - 1 ? 0 : widths[i]!)).join("  ")
      .trimEnd()
  );
  const headline = {
    relay_vs_limit: ratio(relay?.load.per_second, limit?.load.per_second),
    relay_vs_naive: ratio(relay?.load.per_second, naive?.load.per_second),
    relay_vs_passthrough: ratio(
      relay?.load.per_second,
      passthrough?.load.per_second,
    ),
    passthrough_vs_limit: ratio(
      passthrough?.load.per_second,
      limit?.load.per_second,
    ),
    drain_vs_limit: ratio(backlog?.drain_per_second, limit?.load.per_second),
  };
  out.push(
    db
      ? `db: SQL commit → receipt, one step at a time (${db.notify.n} notify, ${db.poll.n} poll at ${db.poll.poll_ms} ms; ${db.server})`
      : "db: not measured in this run",
    "",
    `relay/limit ${headline.relay_vs_limit ?? "-"}  relay/naive ${
      headline.relay_vs_naive ?? "-"
    }  relay/passthrough ${headline.relay_vs_passthrough ?? "-"}  drain/limit ${
      headline.drain_vs_limit ?? "-"
    }  (concurrency ${sizes.concurrency}, ${navigator.hardwareConcurrency} cores)`,
    `passthrough/limit ${headline.passthrough_vs_limit ?? "-"}${
      passthrough
        ? `  (its process: ${passthrough.cpu_ms_per_delivery} ms CPU per delivery)`
        : ""
    }`,
  );
  if (backlog) {
    const cpu = backlog.drain_cpu_per_delivery;
    out.push(
      `backlog drain: relay CPU ${cpu.total_ms} ms per delivery (KV's SQLite thread ${cpu.kv_ms} ms)`,
    );
  }
  if (relay && limit) {
    // The CPU a relay could use per delivery at half the limit, after the bench's
    // own client and receiver have had theirs.
    const target = limit.load.per_second / 2;
    const cores = navigator.hardwareConcurrency;
    const budget = (cores * 1000 - target * relay.bench_cpu_per_delivery) /
      target;
    const cpu = relay.cpu_per_delivery;
    out.push(
      `relay CPU per delivery under load: ${cpu.total_ms} ms (KV's SQLite thread ${cpu.kv_ms} ms); at 0.5 × limit (${
        Math.round(target)
      }/s) ${cores} cores leave it ${
        round(budget, 3)
      } ms after the bench's ${relay.bench_cpu_per_delivery} ms`,
    );
  }
  // deno-lint-ignore no-console
  console.log(out.join("\n"));
  // deno-lint-ignore no-console
  console.log(JSON.stringify({
    bench: "webhook-relay",
    sizes,
    cores: navigator.hardwareConcurrency,
    ...headline,
    limit,
    naive,
    passthrough,
    relay,
    backlog,
    db,
  }));
} finally {
  await receiver.close();
}
