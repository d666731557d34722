/**
 * Crash soak: sends N deliveries through a real relay process to a receiver on
 * 127.0.0.1 while the relay is killed with SIGKILL at random moments and restarted on
 * the same KV file. The receiver counts by `webhook-id`; the run prints delivered,
 * lost and duplicate counts and exits non-zero on any loss.
 *
 * Usage: `deno task soak [--deliveries 10000] [--kills 5] [--seed 42]`
 */
import { Webhook } from "standardwebhooks";
import { type RelayProcess, spawnRelay } from "./relay_process.ts";

const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/** What a soak run is asked to do. */
export interface SoakOptions {
  deliveries: number;
  kills: number;
  /** Seeds the kill moments and the receiver's occasional 503s. */
  seed: number;
  /** Parallel event posts. */
  producers?: number;
  /** Upper bound on the whole run. */
  deadlineMs?: number;
  /** Progress lines; silent when omitted. */
  log?: (line: string) => void;
}

/** What a soak run found. */
export interface SoakResult {
  expected: number;
  delivered: number;
  lost: number;
  /** Extra 2xx-answered requests for an id already delivered (at-least-once). */
  duplicates: number;
  /** Requests that failed the signature check; must be 0. */
  unverified: number;
  kills: number;
  requests: number;
  elapsedMs: number;
}

/** A small deterministic PRNG (mulberry32), so a failing run can be repeated. */
function _rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const _sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs one soak.
 *
 * @param opts Deliveries, kills, seed and bounds.
 * @returns The counts; `lost > 0` means the relay dropped a delivery.
 */
export async function runSoak(opts: SoakOptions): Promise<SoakResult> {
  const started = Date.now();
  const log = opts.log ?? (() => {});
  const random = _rng(opts.seed);
  const deadline = started + (opts.deadlineMs ?? 600_000);
  const dir = await Deno.makeTempDir({ prefix: "relay-soak-" });
  const hook = new Webhook(SECRET);
  const okCount = new Map<string, number>();
  let requests = 0;
  let unverified = 0;
  const receiver = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => {
      requests++;
      const body = await req.text();
      try {
        hook.verify(body, Object.fromEntries(req.headers));
      } catch {
        unverified++;
        return new Response("bad signature", { status: 400 });
      }
      if (random() < 0.03) return new Response("busy", { status: 503 });
      const id = req.headers.get("webhook-id")!;
      okCount.set(id, (okCount.get(id) ?? 0) + 1);
      return new Response("ok");
    },
  );
  const target = `http://127.0.0.1:${receiver.addr.port}/hooks`;
  const env = {
    RELAY_KV_PATH: `${dir}/kv.sqlite3`,
    RELAY_SIGNING_SECRET: SECRET,
    RELAY_TIMEOUT_MS: "2000",
    RELAY_SWEEP_MS: "250",
    RELAY_RETRY_SCHEDULE: "0.2,0.5,1,1,1,1,1,1,1,1,1,1,1,1",
  };

  let relay: RelayProcess = await spawnRelay(env);
  let ready = Promise.resolve(relay);
  const expected = new Set<string>();
  let kills = 0;
  try {
    const post = async (
      body: unknown,
    ): Promise<{ deliveries: { id: string }[] }> => {
      for (;;) {
        if (Date.now() > deadline) throw new Error("soak deadline passed");
        const { url } = await ready;
        try {
          const res = await fetch(`${url}/v1/events`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(body),
          });
          if (res.status === 202) return await res.json();
          await res.body?.cancel();
          throw new Error(`HTTP ${res.status}`);
        } catch {
          // The relay was killed mid-request: the event may or may not be
          // committed. Posting it again is safe; a duplicate gets the first answer.
          await _sleep(50);
        }
      }
    };
    let next = 0;
    const producer = async () => {
      while (next < opts.deliveries) {
        const i = next++;
        await post({
          type: "media_buy.created",
          tenant_id: "t_soak",
          principal_id: "p_soak",
          media_buy_id: `mb_${i}`,
          step_id: `step_${i}`,
          status: "working",
          push_notification_config: { url: target },
        });
        const answer = await post({
          type: "workflow_step.updated",
          step_id: `step_${i}`,
          status: "completed",
        });
        for (const d of answer.deliveries) expected.add(d.id);
      }
    };
    const producing = Promise.all(
      Array.from({ length: opts.producers ?? 8 }, producer),
    );
    // Kill at random points of the work (accepted + delivered), so every kill
    // lands mid-run however fast this machine is.
    const killAt = Array.from(
      { length: opts.kills },
      () => 0.05 + random() * 0.85,
    )
      .sort();
    const progress = () =>
      (expected.size + okCount.size) / (2 * opts.deliveries);
    const killer = (async () => {
      for (const at of killAt) {
        while (progress() < at && Date.now() < deadline) await _sleep(5);
        const restarted = Promise.withResolvers<RelayProcess>();
        ready = restarted.promise;
        relay.child.kill("SIGKILL");
        await relay.child.status;
        kills++;
        log(
          `kill ${kills}: accepted ${expected.size}, delivered ${okCount.size}`,
        );
        relay = await spawnRelay(env);
        restarted.resolve(relay);
      }
    })();
    await Promise.all([producing, killer]);
    log(`all ${expected.size} deliveries accepted; waiting for the rest`);
    for (;;) {
      const missing = [...expected].filter((id) => !okCount.has(id)).length;
      if (missing === 0 && await _queueDepth(relay.url) === 0) break;
      if (Date.now() > deadline) break;
      await _sleep(250);
    }
  } finally {
    relay.child.kill("SIGTERM");
    await relay.child.status;
    await receiver.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
  const delivered = [...expected].filter((id) => okCount.has(id)).length;
  let duplicates = 0;
  for (const n of okCount.values()) duplicates += n - 1;
  return {
    expected: expected.size,
    delivered,
    lost: expected.size - delivered,
    duplicates,
    unverified,
    kills,
    requests,
    elapsedMs: Date.now() - started,
  };
}

async function _queueDepth(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = /^relay_queue_depth (\d+)$/m.exec(text);
  return m ? Number(m[1]) : NaN;
}

function _arg(name: string, fallback: number): number {
  const i = Deno.args.indexOf(`--${name}`);
  const value = i >= 0 ? Number(Deno.args[i + 1]) : fallback;
  if (!Number.isInteger(value) || value < 0) {
    throw new Error(`--${name} expects a whole number`);
  }
  return value;
}

if (import.meta.main) {
  // deno-lint-ignore no-console
  const print = (line: string) => console.log(line);
  const result = await runSoak({
    deliveries: _arg("deliveries", 10_000),
    kills: _arg("kills", 5),
    seed: _arg("seed", Date.now() % 100_000),
    log: print,
  });
  print(
    `delivered ${result.delivered} / lost ${result.lost} / duplicates ${result.duplicates}` +
      ` (expected ${result.expected}, ${result.requests} requests, ${result.kills} SIGKILLs,` +
      ` ${result.unverified} unverified, ${
        (result.elapsedMs / 1000).toFixed(1)
      } s)`,
  );
  Deno.exit(result.lost > 0 || result.unverified > 0 ? 1 : 0);
}
