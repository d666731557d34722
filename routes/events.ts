/** POST /v1/events: media-buy and step-completion events in, durable deliveries out. */
import { createHash } from "node:crypto";
import { createRoute } from "@hono/zod-openapi";
import { bodyLimit } from "hono/body-limit";
import { acceptEvent, type RelayEvent } from "../relay/intake.ts";
import { targetUrlProblem } from "../relay/target_url.ts";
import type { AppDeps } from "./app.ts";
import { newRouter } from "./app.ts";
import { invalid, RequestError } from "./errors.ts";
import { Answer, ErrorBody, EventBody, EventHeaders } from "./schemas.ts";

/** Largest accepted request body. */
export const MAX_BODY_BYTES = 64 * 1024;

const errors = {
  400: {
    content: { "application/json": { schema: ErrorBody } },
    description: "Invalid input; `issues` names each field",
  },
  409: {
    content: { "application/json": { schema: ErrorBody } },
    description: "Idempotency-Key reused with another body",
  },
  413: {
    content: { "application/json": { schema: ErrorBody } },
    description: "Body over 64 KiB",
  },
  415: {
    content: { "application/json": { schema: ErrorBody } },
    description: "Not application/json",
  },
};

const postEvent = createRoute({
  method: "post",
  path: "/v1/events",
  security: [{ bearer: [] }],
  request: {
    headers: EventHeaders,
    body: {
      content: { "application/json": { schema: EventBody } },
      required: true,
    },
  },
  responses: {
    202: {
      content: { "application/json": { schema: Answer } },
      description:
        "Committed: the deliveries made and, for each thing not delivered, a reason",
    },
    ...errors,
  },
});

const _fatal = new TextDecoder("utf-8", { fatal: true });

/**
 * Creates the events routes.
 *
 * @param deps The app's dependencies.
 * @returns A router to mount at `/`.
 */
export function createEventsRoutes(deps: AppDeps) {
  const router = newRouter();
  router.use(
    postEvent.path,
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: () => {
        throw new RequestError(
          413,
          "body_too_large",
          `Body exceeds ${MAX_BODY_BYTES} bytes`,
          [{ path: "", message: `larger than ${MAX_BODY_BYTES} bytes` }],
        );
      },
    }),
    async (c, next) => {
      const type = c.req.header("content-type") ?? "";
      if (!/^application\/json\s*(;|$)/i.test(type)) {
        throw new RequestError(
          415,
          "unsupported_media_type",
          "Content-Type must be application/json",
          [
            {
              path: "header.content-type",
              message: `expected application/json, got "${type}"`,
            },
          ],
        );
      }
      try {
        _fatal.decode(await c.req.arrayBuffer());
      } catch {
        throw invalid([{ path: "", message: "body is not valid UTF-8" }]);
      }
      await next();
    },
  );
  return router.openapi(postEvent, async (c) => {
    const body = c.req.valid("json");
    const key = c.req.valid("header")["idempotency-key"];
    let event: RelayEvent;
    if (body.type === "media_buy.created") {
      const { push_notification_config: pnc, ...rest } = body;
      const problem = targetUrlProblem(pnc.url, {
        allowPrivate: deps.allowPrivateTargets,
        allowlist: deps.targetAllowlist,
      });
      if (problem) {
        throw invalid([{
          path: "push_notification_config.url",
          message: problem,
        }]);
      }
      const auth = pnc.authentication;
      event = {
        ...rest,
        target: {
          url: pnc.url,
          token: pnc.token,
          auth: auth &&
            { scheme: auth.schemes[0]!, credentials: auth.credentials },
        },
      };
    } else {
      event = body;
    }
    const raw = new Uint8Array(await c.req.arrayBuffer());
    const fingerprint = createHash("sha256").update(raw).digest("hex");
    const { answer, replayed, held } = await acceptEvent(
      { ...deps, leaseMs: deps.worker.leaseMs },
      event,
      { idempotencyKey: key, fingerprint },
    );
    for (const h of held) deps.worker.send(h);
    if (replayed) c.header("idempotent-replayed", "true");
    return c.json(answer, 202);
  });
}
