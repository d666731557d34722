/** GET /healthz (KV reachable) and GET /metrics (Prometheus text); no token needed. */
import { createRoute, z } from "@hono/zod-openapi";
import { settingKey } from "../relay/keys.ts";
import { openCount } from "../relay/store.ts";
import type { AppDeps } from "./app.ts";
import { newRouter } from "./app.ts";

const Health = z.object({ ok: z.boolean(), kv: z.enum(["ok", "unreachable"]) })
  .openapi("Health");

const healthz = createRoute({
  method: "get",
  path: "/healthz",
  responses: {
    200: {
      content: { "application/json": { schema: Health } },
      description: "KV answers",
    },
    503: {
      content: { "application/json": { schema: Health } },
      description: "KV is unreachable",
    },
  },
});

const metrics = createRoute({
  method: "get",
  path: "/metrics",
  responses: {
    200: {
      content: { "text/plain": { schema: z.string() } },
      description: "Prometheus text exposition",
    },
  },
});

/**
 * Creates the health and metrics routes.
 *
 * @param deps The app's dependencies.
 * @returns A router to mount at `/`.
 */
export function createHealthRoutes(deps: AppDeps) {
  return newRouter()
    .openapi(healthz, async (c) => {
      try {
        await deps.kv.get(settingKey("healthz"));
        return c.json({ ok: true, kv: "ok" as const }, 200);
      } catch (err) {
        deps.log.error("healthz: KV unreachable", { error: String(err) });
        return c.json({ ok: false, kv: "unreachable" as const }, 503);
      }
    })
    .openapi(metrics, async (c) => {
      c.header("content-type", "text/plain; version=0.0.4");
      const depth = await openCount(deps.kv);
      return c.text(deps.metrics.render(depth, Deno.memoryUsage()), 200);
    });
}
