/**
 * The composition root: reads the environment, opens KV, wires the worker, the queue
 * listener, the sweeper and the HTTP app, and shuts them down in order on a signal.
 *
 * Usage: `deno task dev` (local, forgiving) or `deno task start` (production).
 */
import { type Config, ConfigError, loadConfig, type Mode } from "./config.ts";
import { settingKey } from "./relay/keys.ts";
import { createGroupCommitter } from "./relay/group_commit.ts";
import { createTargetCache } from "./relay/target_cache.ts";
import { createLogger, type Logger } from "./relay/log.ts";
import { Metrics } from "./relay/metrics.ts";
import { createQueueHandler } from "./relay/queue.ts";
import { createSigner } from "./relay/sign.ts";
import { sweepDue } from "./relay/sweeper.ts";
import { createTargetFetch } from "./relay/target_fetch.ts";
import { createDeliveryWorker } from "./relay/worker.ts";
import { createApp } from "./routes/app.ts";
import { createSql } from "./db/client.ts";
import { keepListening } from "./db/notify.ts";
import { createStepSource } from "./db/source.ts";
import { explainObject } from "./relay/explain.ts";
import { createPgSync } from "./relay/pg_sync.ts";
import { runPgLoop } from "./relay/pg_loop.ts";

const mode: Mode = Deno.args[0] === "dev" ? "dev" : "start";
const log = createLogger();

let config;
try {
  config = loadConfig(Deno.env.toObject(), mode);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  // deno-lint-ignore no-console
  console.error(`relay cannot start (${mode}): ${err.message}`);
  Deno.exit(78);
}

if (config.kvPath) {
  const dir = config.kvPath.replace(/[^/]*$/, "");
  if (dir) await Deno.mkdir(dir, { recursive: true });
}
const kv = await Deno.openKv(config.kvPath);
const secrets = config.signingSecrets.length > 0
  ? config.signingSecrets
  : [await devSecret(kv, log)];
if (!config.apiToken) {
  log.warn("RELAY_API_TOKEN is unset: the /v1 API accepts anyone");
}

const metrics = new Metrics();
const committer = createGroupCommitter(kv);
const targets = createTargetCache(kv, { now: Date.now });
const policy = {
  allowPrivate: config.allowPrivateTargets,
  allowlist: config.targetAllowlist,
};
const worker = createDeliveryWorker({
  kv,
  fetch: createTargetFetch({ policy }),
  now: Date.now,
  random: Math.random,
  config,
  queue: config.queue === "kv",
  signer: createSigner(secrets),
  log,
  metrics,
  committer,
  targets,
});
if (config.queue === "kv") kv.listenQueue(createQueueHandler({ worker, log }));

const sweep = () => sweepDue({ kv, now: Date.now, worker, log });
let stopping = false;
let sweepTimer: ReturnType<typeof setTimeout> | undefined;
const sweepLoop = async () => {
  await sweep().catch((err) =>
    log.error("sweep failed", { error: String(err) })
  );
  if (!stopping) sweepTimer = setTimeout(sweepLoop, config.sweepMs);
};
sweepLoop();
if (typeof Deno.cron === "function" && Deno.env.get("DENO_DEPLOYMENT_ID")) {
  Deno.cron("relay-sweep", "* * * * *", async () => void await sweep());
}

const pg = config.databaseUrl ? startPg(config.databaseUrl, config) : undefined;

const app = createApp({
  kv,
  now: Date.now,
  log,
  metrics,
  committer,
  targets,
  queue: config.queue === "kv",
  worker,
  apiToken: config.apiToken,
  allowPrivateTargets: config.allowPrivateTargets,
  targetAllowlist: config.targetAllowlist,
  healthConfig: config,
  explain: pg?.explain,
});
const server = Deno.serve({
  hostname: config.host,
  port: config.port,
  onListen: ({ hostname, port }) =>
    log.info("relay listening", {
      mode,
      url: `http://${hostname}:${port}`,
      kv: config.kvPath ?? "default",
      queue: config.queue,
      private_targets: config.allowPrivateTargets,
    }),
}, app.fetch);

async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  log.info("relay stopping", { signal });
  clearTimeout(sweepTimer);
  await server.shutdown();
  await pg?.stop();
  // No new attempts (queue wake-ups, sweeps, fast path) from here: only those
  // already sending finish, for at most 5 s, and record their outcome.
  worker.close();
  await Promise.race([worker.idle(), new Promise((r) => setTimeout(r, 5000))]);
  kv.close();
  Deno.exit(0);
}
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.addSignalListener(signal, () => void shutdown(signal));
}

function startPg(url: string, config: Config) {
  const sql = createSql(url);
  const source = createStepSource(sql);
  const resolveOpts = {
    nullIsActive: config.nullIsActive,
    allowPrivate: config.allowPrivateTargets,
    allowlist: config.targetAllowlist,
  };
  const sync = createPgSync({
    kv,
    source,
    now: Date.now,
    log,
    metrics,
    queue: config.queue === "kv",
    worker,
    targets,
    overlapMs: config.pgOverlapMs,
    ...resolveOpts,
  });
  // LISTEN is (re)tried on every loop tick until it holds: Postgres down at start
  // is a logged warning, never an unhandled rejection; polling catches up.
  const listener = config.pgMode === "notify"
    ? keepListening(sql, {
      onNotice: (notice) =>
        sync.notify(notice).catch((err) =>
          log.error("notify processing failed", {
            step_id: notice.step_id,
            error: String(err),
          })
        ),
      onListen: () => void loop.tick(),
      log,
    })
    : undefined;
  const loop = runPgLoop({
    sync,
    kv,
    source,
    log,
    pollMs: config.pgPollMs,
    beforePass: listener?.ensure,
  });
  log.info("sales agent sync started", {
    mode: config.pgMode,
    poll_ms: config.pgPollMs,
  });
  return {
    explain: (type: string, id: string) =>
      explainObject({ kv, source, ...resolveOpts }, type, id),
    async stop() {
      await loop.stop();
      await listener?.stop();
      await sql.end({ timeout: 5 });
    },
  };
}

async function devSecret(kv: Deno.Kv, log: Logger): Promise<string> {
  const key = settingKey("dev_signing_secret");
  let secret = (await kv.get<string>(key)).value;
  if (!secret) {
    const bytes = crypto.getRandomValues(new Uint8Array(32));
    secret = `whsec_${btoa(String.fromCharCode(...bytes))}`;
    const res = await kv.atomic().check({ key, versionstamp: null }).set(
      key,
      secret,
    ).commit();
    if (!res.ok) secret = (await kv.get<string>(key)).value!;
  }
  log.warn(
    "RELAY_SIGNING_SECRET is unset: signing with a dev secret kept in KV; give it to your receiver",
    { dev_signing_secret: secret },
  );
  return secret;
}
