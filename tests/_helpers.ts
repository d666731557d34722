/** Test harness: real KV files, real loopback receivers, an in-process relay. */
import { Hono } from "hono";
import { type Config, loadConfig } from "../config.ts";
import { verifyWebhooks } from "../receiver/middleware.ts";
import type { VerifiedWebhook } from "../receiver/verify.ts";
import { createGroupCommitter } from "../relay/group_commit.ts";
import { createTargetCache } from "../relay/target_cache.ts";
import { createLogger } from "../relay/log.ts";
import { Metrics } from "../relay/metrics.ts";
import { createQueueHandler } from "../relay/queue.ts";
import { createSigner } from "../relay/sign.ts";
import { createTargetFetch, type Resolver } from "../relay/target_fetch.ts";
import { createDeliveryWorker, type DeliveryWorker } from "../relay/worker.ts";
import { type AppDeps, createApp } from "../routes/app.ts";

/** The Standard Webhooks spec's example secret. */
export const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
export const HMAC_SECRET = "adcp-hmac-secret-0123456789abcdef";

/** Opens a fresh KV in a temp file. */
export async function openTestKv(): Promise<
  { kv: Deno.Kv; path: string; dir: string } & AsyncDisposable
> {
  const dir = await Deno.makeTempDir({ prefix: "relay-test-" });
  const path = `${dir}/kv.sqlite3`;
  const kv = await Deno.openKv(path);
  return {
    kv,
    path,
    dir,
    async [Symbol.asyncDispose]() {
      try {
        kv.close();
      } catch { /* already closed */ }
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** A request the receiver got, verified or not. */
export interface Hit {
  n: number;
  headers: Headers;
  body: string;
  verified?: VerifiedWebhook;
  /** The status the receiver answered, once it has. */
  status?: number;
}

/** How a receiver answers its n-th request (1-based). */
export type Behaviour = (hit: Hit) => Response | Promise<Response>;

/** A real HTTP receiver on 127.0.0.1 that verifies with the published verifier. */
export function startReceiver(
  behaviour: Behaviour = () => new Response("ok"),
  opts: { adcpSecret?: string; secrets?: string[] } = {},
) {
  const hits: Hit[] = [];
  const app = new Hono();
  app.post(
    "/*",
    async (c, next) => {
      hits.push({
        n: hits.length + 1,
        headers: c.req.raw.headers,
        body: await c.req.text(),
      });
      await next();
    },
    verifyWebhooks({
      secrets: opts.secrets ?? [SECRET],
      adcpSecret: opts.adcpSecret,
    }),
    async (c) => {
      const hit = hits[hits.length - 1]!;
      hit.verified = c.var.webhook;
      const res = await behaviour(hit);
      hit.status = res.status;
      return res;
    },
  );
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    app.fetch,
  );
  const url =
    `http://127.0.0.1:${server.addr.port}/webhooks/creative-status/123`;
  return {
    url,
    hits,
    verified: () => hits.filter((h) => h.verified),
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}

/** Log lines the relay wrote, parsed. */
export type LogLine = Record<string, unknown>;

/** An in-process relay wired as `main.ts` wires it, over a test KV. */
export function startTestRelay(
  kv: Deno.Kv,
  opts: {
    env?: Record<string, string>;
    apiToken?: string;
    queue?: boolean;
    /** Host name resolution for production-mode target checks. */
    resolve?: Resolver;
    explain?: AppDeps["explain"];
  } = {},
) {
  const config: Config = loadConfig({
    RELAY_RETRY_SCHEDULE: "0.05,0.05,0.05",
    RELAY_TIMEOUT_MS: "1000",
    ...opts.env,
  }, "dev");
  const lines: string[] = [];
  const log = createLogger((l) => lines.push(l));
  const metrics = new Metrics();
  const committer = createGroupCommitter(kv);
  const targets = createTargetCache(kv, { now: Date.now });
  const queue = opts.queue ?? true;
  const policy = {
    allowPrivate: config.allowPrivateTargets,
    allowlist: config.targetAllowlist,
  };
  const worker: DeliveryWorker = createDeliveryWorker({
    kv,
    fetch: createTargetFetch({ policy, resolve: opts.resolve }),
    now: Date.now,
    random: Math.random,
    config,
    queue,
    signer: createSigner([SECRET]),
    log,
    metrics,
    committer,
    targets,
  });
  const listening = queue
    ? kv.listenQueue(createQueueHandler({ worker, log }))
    : Promise.resolve();
  const app = createApp({
    kv,
    now: Date.now,
    log,
    metrics,
    committer,
    targets,
    queue,
    worker,
    apiToken: opts.apiToken,
    allowPrivateTargets: config.allowPrivateTargets,
    targetAllowlist: config.targetAllowlist,
    healthConfig: config,
    explain: opts.explain,
  });
  return {
    app,
    worker,
    config,
    log,
    metrics,
    logs: (): LogLine[] => lines.map((l) => JSON.parse(l)),
    rawLogs: () => lines.join("\n"),
    post: (path: string, body: unknown, headers: Record<string, string> = {}) =>
      app.request(path, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: typeof body === "string" ? body : JSON.stringify(body),
      }),
    get: (path: string, headers: Record<string, string> = {}) =>
      app.request(path, { headers }),
    async [Symbol.asyncDispose]() {
      await worker.idle();
      kv.close();
      await listening;
    },
  };
}

/** Polls until `fn` returns a truthy value or the timeout passes. */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  opts: { timeoutMs?: number; what?: string } = {},
): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 5000);
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) {
      throw new Error(`Timed out waiting for ${opts.what ?? "condition"}`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A media buy mapped to a step, pointing at `url`. */
export function mediaBuy(url: string, overrides: Record<string, unknown> = {}) {
  return {
    type: "media_buy.created",
    tenant_id: "tenant_1",
    principal_id: "principal_1",
    media_buy_id: "mb_1",
    step_id: "step_1",
    status: "working",
    context_id: "ctx_1",
    push_notification_config: { url },
    ...overrides,
  };
}

/** A step update. */
export function stepUpdate(overrides: Record<string, unknown> = {}) {
  return {
    type: "workflow_step.updated",
    step_id: "step_1",
    status: "completed",
    ...overrides,
  };
}
