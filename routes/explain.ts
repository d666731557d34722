/** GET /v1/explain/{object_type}/{object_id}: why a webhook was or was not sent. */
import type { AppDeps } from "./app.ts";
import { newRouter } from "./app.ts";
import { RequestError } from "./errors.ts";

/**
 * Creates the explain route; it answers 503 when no `DATABASE_URL` is configured.
 *
 * @param deps The app's dependencies (`explain` set when Postgres is configured).
 * @returns A router to mount at `/`.
 */
export function createExplainRoutes(deps: AppDeps) {
  const router = newRouter();
  router.get("/v1/explain/:object_type/:object_id", async (c) => {
    if (!deps.explain) {
      throw new RequestError(
        503,
        "postgres_not_configured",
        "Explain reads the sales agent's tables: set DATABASE_URL",
      );
    }
    const doc = await deps.explain(
      c.req.param("object_type"),
      c.req.param("object_id"),
    );
    return c.json(doc);
  });
  return router;
}
