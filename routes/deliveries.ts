/** Delivery inspection and replay: /v1/deliveries… */
import { createRoute, z } from "@hono/zod-openapi";
import {
  DeliveryNotFoundError,
  recoverDead,
  redeliver,
} from "../relay/replay.ts";
import {
  getDelivery,
  listAttempts,
  listDeliveries,
  readPayload,
} from "../relay/store.ts";
import type { DeliveryRecord } from "../relay/types.ts";
import type { AppDeps } from "./app.ts";
import { newRouter } from "./app.ts";
import { iso, json } from "./_json.ts";
import { invalid } from "./errors.ts";
import {
  Delivery,
  DeliveryId,
  ErrorBody,
  ListQuery,
  RecoverBody,
} from "./schemas.ts";

/** A delivery as the API shows it: times in ISO 8601, credentials left out. */
export function deliveryView(r: DeliveryRecord) {
  const { auth, lease_until, ...rest } = r;
  return {
    ...rest,
    auth_scheme: auth?.scheme ?? null,
    in_flight: lease_until !== null,
    next_attempt_at: iso(r.lease_until ?? r.next_attempt_at),
    created_at: iso(r.created_at)!,
    updated_at: iso(r.updated_at)!,
    delivered_at: iso(r.delivered_at),
    dead_at: iso(r.dead_at),
  };
}

const getOne = createRoute({
  method: "get",
  path: "/v1/deliveries/{id}",
  security: [{ bearer: [] }],
  request: { params: DeliveryId },
  responses: {
    200: json(Delivery, "The delivery, its exact payload and every attempt"),
    400: json(ErrorBody, "Malformed id"),
    404: json(ErrorBody, "No such delivery"),
  },
});

const list = createRoute({
  method: "get",
  path: "/v1/deliveries",
  security: [{ bearer: [] }],
  request: { query: ListQuery },
  responses: {
    200: json(
      z.object({
        items: z.array(Delivery),
        next_cursor: z.string().nullable(),
      }),
      "Newest first",
    ),
    400: json(ErrorBody, "Bad filter"),
  },
});

const redeliverRoute = createRoute({
  method: "post",
  path: "/v1/deliveries/{id}/redeliver",
  security: [{ bearer: [] }],
  request: { params: DeliveryId },
  responses: {
    202: json(
      Delivery,
      "Re-queued for a fresh attempt cycle with the same webhook-id",
    ),
    404: json(ErrorBody, "No such delivery"),
  },
});

const recover = createRoute({
  method: "post",
  path: "/v1/deliveries/recover",
  security: [{ bearer: [] }],
  request: {
    body: {
      content: { "application/json": { schema: RecoverBody } },
      required: true,
    },
  },
  responses: {
    202: json(
      z.object({ requeued: z.number(), ids: z.array(z.string()) }),
      "Dead deliveries re-queued",
    ),
    400: json(ErrorBody, "Bad window"),
  },
});

/**
 * Creates the deliveries routes.
 *
 * @param deps The app's dependencies.
 * @returns A router to mount at `/`.
 */
export function createDeliveriesRoutes(deps: AppDeps) {
  return newRouter()
    .openapi(getOne, async (c) => {
      const { id } = c.req.valid("param");
      const { value } = await getDelivery(deps.kv, id);
      if (!value) throw new DeliveryNotFoundError(id);
      const [payload, attempts] = await Promise.all([
        readPayload(deps.kv, id),
        listAttempts(deps.kv, id),
      ]);
      return c.json({
        ...deliveryView(value),
        payload,
        attempts: attempts.map((a) => ({ ...a, at: iso(a.at) })),
      }, 200);
    })
    .openapi(list, async (c) => {
      const page = await listDeliveries(deps.kv, c.req.valid("query"));
      return c.json({
        items: page.items.map(deliveryView),
        next_cursor: page.next_cursor,
      }, 200);
    })
    .openapi(redeliverRoute, async (c) => {
      const record = await redeliver(deps, c.req.valid("param").id);
      deps.worker.kick(record.id);
      deps.log.info("redeliver requested", {
        trace_id: record.event_id,
        delivery_id: record.id,
        cycle: record.cycle,
      });
      return c.json(deliveryView(record), 202);
    })
    .openapi(recover, async (c) => {
      const body = c.req.valid("json");
      const since = Date.parse(body.since);
      const until = body.until === undefined
        ? undefined
        : Date.parse(body.until);
      if (until !== undefined && until < since) {
        throw invalid([{ path: "until", message: "must not be before since" }]);
      }
      const recovered = await recoverDead(deps, { since, until });
      deps.worker.kickMany(recovered);
      const ids = recovered.map((r) => r.id);
      deps.log.info("recover requested", {
        since: body.since,
        until: body.until,
        requeued: ids.length,
      });
      return c.json({ requeued: ids.length, ids }, 202);
    });
}
