/** The API's request schemas: they validate input and document it at `/openapi.json`. */
import { z } from "@hono/zod-openapi";
import {
  AUTH_SCHEMES,
  MIN_CREDENTIAL_CHARS,
  normaliseAuthScheme,
} from "../relay/auth_scheme.ts";
import { TASK_STATUSES } from "../relay/status.ts";

const id = (what: string) =>
  z.string().min(1).max(255).openapi({ description: what });

export const PushNotificationConfig = z.strictObject({
  url: z.string().max(2048).openapi({
    example: "https://buyer.example/webhooks/adcp",
  }),
  token: z.string().min(16).max(4096).optional().openapi({
    description: "Echoed back in every payload as `token`.",
  }),
  authentication: z.strictObject({
    schemes: z.array(z.string()).length(1).transform((s, ctx) => {
      const scheme = normaliseAuthScheme(s[0]!);
      if (!scheme) {
        ctx.addIssue({
          code: "custom",
          path: [0],
          message: `expected one of ${AUTH_SCHEMES.join(", ")}, got "${s[0]}"`,
        });
        return z.NEVER;
      }
      return [scheme];
    }).openapi({ example: ["HMAC-SHA256"] }),
    credentials: z.string().min(MIN_CREDENTIAL_CHARS).max(4096),
  }).optional(),
}).openapi("PushNotificationConfig");

const Status = z.string().min(1).max(50).openapi({
  description: `AdCP task status (${
    TASK_STATUSES.join(", ")
  }) or a sales agent status such as in_progress.`,
});

export const MediaBuyCreated = z.strictObject({
  type: z.literal("media_buy.created"),
  tenant_id: id("Sales agent tenant."),
  principal_id: id("Buyer principal."),
  media_buy_id: id("The media buy."),
  step_id: id("Workflow step the media buy is mapped to."),
  status: Status,
  task_type: z.string().min(1).max(100).default("create_media_buy"),
  operation_id: z.string().regex(/^[A-Za-z0-9_.:-]{1,255}$/).optional(),
  context_id: id("AdCP context id.").optional(),
  push_notification_config: PushNotificationConfig,
}).openapi("MediaBuyCreated");

export const StepUpdated = z.strictObject({
  type: z.literal("workflow_step.updated"),
  step_id: id("The workflow step."),
  status: Status,
  completed_at: z.iso.datetime({ offset: true }).optional(),
  result: z.record(z.string(), z.unknown()).optional(),
  message: z.string().max(10_000).optional(),
  error: z.union([z.string().max(10_000), z.record(z.string(), z.unknown())])
    .optional(),
}).openapi("WorkflowStepUpdated");

export const EventBody = z.discriminatedUnion("type", [
  MediaBuyCreated,
  StepUpdated,
])
  .openapi("Event");

export const EventHeaders = z.object({
  "idempotency-key": z.string().regex(
    /^[\x21-\x7e]{1,255}$/,
    "expected 1 to 255 printable ASCII characters",
  ).optional(),
});

export const Answer = z.object({
  event_id: z.string(),
  deliveries: z.array(
    z.object({ id: z.string(), url: z.string(), status: z.string() }),
  ),
  skipped: z.array(z.object({ reason: z.string() }).catchall(z.unknown())),
}).openapi("EventAnswer");

export const ErrorBody = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    issues: z.array(z.object({ path: z.string(), message: z.string() })),
  }),
}).openapi("Error");

export const DeliveryId = z.object({
  id: z.string().regex(
    /^msg_[0-9A-HJKMNP-TV-Z]{26}$/,
    "expected a delivery id (msg_ and 26 ULID characters)",
  ),
});

export const ListQuery = z.object({
  object_id: z.string().min(1).max(255).optional(),
  step_id: z.string().min(1).max(255).optional(),
  status: z.enum(["pending", "failed", "succeeded", "dead"]).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: DeliveryId.shape.id.optional(),
});

export const RecoverBody = z.strictObject({
  since: z.iso.datetime({ offset: true }),
  until: z.iso.datetime({ offset: true }).optional(),
}).openapi("RecoverWindow");

/** A delivery as the API shows it (no credentials). */
export const Delivery = z.record(z.string(), z.unknown()).openapi("Delivery");
