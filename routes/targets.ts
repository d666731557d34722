/** Target health: GET /v1/targets and POST /v1/targets/{id}/enable. */
import { createRoute, z } from "@hono/zod-openapi";
import * as keys from "../relay/keys.ts";
import { enabled, targetState } from "../relay/targets.ts";
import type { TargetRecord } from "../relay/types.ts";
import type { AppDeps } from "./app.ts";
import { newRouter } from "./app.ts";
import { iso, json } from "./_json.ts";
import { RequestError } from "./errors.ts";
import { ErrorBody } from "./schemas.ts";

const TargetId = z.object({
  id: z.string().regex(
    /^tgt_[0-9a-f]{24}$/,
    "expected a target id (tgt_ and 24 hex digits)",
  ),
});

const TargetsQuery = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(50),
  cursor: TargetId.shape.id.optional(),
});

const Target = z.record(z.string(), z.unknown()).openapi("Target");

/** A target as the API shows it: its state, failure run and disablement. */
export function targetView(t: TargetRecord, now: number) {
  return {
    id: t.id,
    url: t.url,
    state: targetState(t, now),
    consecutive_failures: t.consecutive_failures ?? 0,
    failing_since: iso(t.failing_since),
    last_failure_at: iso(t.last_failure_at),
    last_error: t.last_error ?? null,
    circuit_open_until: iso(t.circuit_open_until),
    disabled_at: iso(t.disabled_at),
    disabled_reason: t.disabled_reason,
  };
}

const list = createRoute({
  method: "get",
  path: "/v1/targets",
  security: [{ bearer: [] }],
  request: { query: TargetsQuery },
  responses: {
    200: json(
      z.object({ items: z.array(Target), next_cursor: z.string().nullable() }),
      "Every target with its health, by id",
    ),
    400: json(ErrorBody, "Bad query"),
  },
});

const enable = createRoute({
  method: "post",
  path: "/v1/targets/{id}/enable",
  security: [{ bearer: [] }],
  request: { params: TargetId },
  responses: {
    200: json(Target, "Enabled, with a clean failure record"),
    400: json(ErrorBody, "Malformed id"),
    404: json(ErrorBody, "No such target"),
  },
});

/**
 * Creates the targets routes.
 *
 * @param deps The app's dependencies.
 * @returns A router to mount at `/`.
 */
export function createTargetsRoutes(deps: AppDeps) {
  return newRouter()
    .openapi(list, async (c) => {
      const { limit, cursor } = c.req.valid("query");
      const items: TargetRecord[] = [];
      const selector = cursor
        ? { prefix: keys.targetsPrefix, start: [...keys.targetKey(cursor), ""] }
        : { prefix: keys.targetsPrefix };
      for await (
        const e of deps.kv.list<TargetRecord>(selector, { limit: limit + 1 })
      ) items.push(e.value);
      const more = items.length > limit;
      if (more) items.pop();
      const now = deps.now();
      return c.json({
        items: items.map((t) => targetView(t, now)),
        next_cursor: more ? items[items.length - 1]!.id : null,
      }, 200);
    })
    .openapi(enable, async (c) => {
      const { id } = c.req.valid("param");
      for (;;) {
        const entry = await deps.kv.get<TargetRecord>(keys.targetKey(id));
        if (!entry.value) {
          throw new RequestError(
            404,
            "not_found",
            `Cannot find target "${id}"`,
            [{ path: "param.id", message: "no such target" }],
          );
        }
        const next = enabled(entry.value);
        const res = await deps.kv.atomic().check(entry).set(entry.key, next)
          .commit();
        if (!res.ok) continue;
        deps.targets?.forget(id);
        deps.log.info("target enabled", { target_id: id, url: next.url });
        return c.json(targetView(next, deps.now()), 200);
      }
    });
}
