/** GET /healthz (KV reachable) and GET /metrics (Prometheus text). */
import { settingKey } from "../relay/keys.ts";
import { openCount } from "../relay/store.ts";
import type { AppDeps } from "./app.ts";
import { newRouter } from "./app.ts";

/**
 * Creates the health and metrics routes (no token needed).
 *
 * @param deps The app's dependencies.
 * @returns A router to mount at `/`.
 */
export function createHealthRoutes(deps: AppDeps) {
  const router = newRouter();
  router.get("/healthz", async (c) => {
    try {
      await deps.kv.get(settingKey("healthz"));
      return c.json({ ok: true, kv: "ok" });
    } catch (err) {
      deps.log.error("healthz: KV unreachable", { error: String(err) });
      return c.json({ ok: false, kv: "unreachable" }, 503);
    }
  });
  router.get("/metrics", async (c) => {
    c.header("content-type", "text/plain; version=0.0.4");
    return c.body(deps.metrics.render(await openCount(deps.kv)));
  });
  return router;
}
