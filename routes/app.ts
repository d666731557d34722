/** Builds the HTTP app: auth on /v1, the routes, one error shape, and `/openapi.json`. */
import { createHash, timingSafeEqual } from "node:crypto";
import { OpenAPIHono } from "@hono/zod-openapi";
import type { GroupCommitter } from "../relay/group_commit.ts";
import type { Allowlist } from "../relay/ip_ranges.ts";
import type { Explanation } from "../relay/explain.ts";
import type { Logger } from "../relay/log.ts";
import type { Metrics } from "../relay/metrics.ts";
import type { TargetCache } from "../relay/target_cache.ts";
import type { HealthConfig } from "../relay/targets.ts";
import type { DeliveryWorker } from "../relay/worker.ts";
import { createDeliveriesRoutes } from "./deliveries.ts";
import { errorResponse, fromZod, invalid, RequestError } from "./errors.ts";
import { createEventsRoutes } from "./events.ts";
import { createExplainRoutes } from "./explain.ts";
import { createHealthRoutes } from "./health.ts";
import { createTargetsRoutes } from "./targets.ts";

/** What the routes need. */
export interface AppDeps {
  kv: Deno.Kv;
  now: () => number;
  log: Logger;
  metrics: Metrics;
  queue: boolean;
  worker: DeliveryWorker;
  apiToken?: string;
  allowPrivateTargets: boolean;
  /** Shares KV commits between concurrent events. */
  committer?: GroupCommitter;
  /** Target records in memory; intake reads them, the enable route updates them. */
  targets?: TargetCache;
  /** Private ranges and hosts allowed in production. */
  targetAllowlist?: Allowlist;
  /** Circuit and disable thresholds, shown by `GET /v1/targets`. */
  healthConfig: HealthConfig;
  /** Set when the sales agent's Postgres is configured. */
  explain?: (objectType: string, objectId: string) => Promise<Explanation>;
}

/** An OpenAPIHono whose validation failures become our 400 shape. */
export function newRouter(): OpenAPIHono {
  return new OpenAPIHono({
    defaultHook: (result) => {
      if (!result.success) {
        const where = result.target === "json" ? undefined : result.target;
        throw invalid(fromZod(result.error.issues, where));
      }
      return undefined;
    },
  });
}

function _digest(s: string): Buffer {
  return createHash("sha256").update(s).digest();
}

/**
 * Creates the relay's HTTP app.
 *
 * @param deps KV, clock, logger, metrics, worker and API settings.
 * @returns The Hono app; `main.ts` passes its `fetch` to `Deno.serve`.
 */
export function createApp(deps: AppDeps): OpenAPIHono {
  const app = newRouter();
  app.onError((err, c) => errorResponse(err, c, deps.log));
  app.notFound((c) =>
    c.json({
      error: {
        code: "not_found",
        message: `No route for ${c.req.method} ${c.req.path}`,
        issues: [],
      },
    }, 404)
  );
  if (deps.apiToken) {
    const expected = _digest(deps.apiToken);
    app.use("/v1/*", async (c, next) => {
      const header = c.req.header("authorization") ?? "";
      const given = header.startsWith("Bearer ") ? header.slice(7) : "";
      if (!timingSafeEqual(_digest(given), expected)) {
        throw new RequestError(
          401,
          "unauthorized",
          "Missing or wrong bearer token",
          [
            {
              path: "header.authorization",
              message: "expected Bearer <RELAY_API_TOKEN>",
            },
          ],
        );
      }
      await next();
    });
  }
  app.route("/", createEventsRoutes(deps));
  app.route("/", createDeliveriesRoutes(deps));
  app.route("/", createHealthRoutes(deps));
  app.route("/", createTargetsRoutes(deps));
  app.route("/", createExplainRoutes(deps));
  app.doc("/openapi.json", {
    openapi: "3.0.0",
    info: { title: "webhook-relay", version: "1.0.0" },
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
  });
  return app;
}
