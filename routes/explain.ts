/** GET /v1/explain/{object_type}/{object_id}: why a webhook was or was not sent. */
import { createRoute, z } from "@hono/zod-openapi";
import type { AppDeps } from "./app.ts";
import { newRouter } from "./app.ts";
import { RequestError } from "./errors.ts";
import { ErrorBody } from "./schemas.ts";

const explain = createRoute({
  method: "get",
  path: "/v1/explain/{object_type}/{object_id}",
  security: [{ bearer: [] }],
  request: {
    params: z.object({
      object_type: z.string().min(1).max(50).openapi({ example: "media_buy" }),
      object_id: z.string().min(1).max(255),
    }),
  },
  responses: {
    200: {
      content: {
        "application/json": {
          schema: z.record(z.string(), z.unknown()).openapi("Explanation"),
        },
      },
      description:
        "Each link of the chain: ok or the named cause, rows and fix",
    },
    503: {
      content: { "application/json": { schema: ErrorBody } },
      description: "No DATABASE_URL: explain reads the agent's tables",
    },
  },
});

/**
 * Creates the explain route; it answers 503 when no `DATABASE_URL` is configured.
 *
 * @param deps The app's dependencies (`explain` set when Postgres is configured).
 * @returns A router to mount at `/`.
 */
export function createExplainRoutes(deps: AppDeps) {
  return newRouter().openapi(explain, async (c) => {
    if (!deps.explain) {
      throw new RequestError(
        503,
        "postgres_not_configured",
        "Explain reads the sales agent's tables: set DATABASE_URL",
      );
    }
    const { object_type, object_id } = c.req.valid("param");
    const doc = await deps.explain(object_type, object_id);
    return c.json(doc as unknown as Record<string, unknown>, 200);
  });
}
