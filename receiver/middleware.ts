/**
 * Hono middleware for receivers: verifies the raw body before any handler parses it,
 * answers 401 with the reason otherwise, and exposes the result as `c.var.webhook`.
 */
import { createMiddleware } from "hono/factory";
import {
  type VerifiedWebhook,
  type VerifyOptions,
  verifyWebhook,
} from "./verify.ts";

/**
 * Creates the verifying middleware.
 *
 * @param opts Secrets (and AdCP HMAC secret) to verify against.
 * @returns Middleware that sets `webhook` on the context.
 * @example
 * ```ts
 * app.post("/hooks", verifyWebhooks({ secrets }), (c) => c.json(c.var.webhook.payload));
 * ```
 */
export function verifyWebhooks(opts: VerifyOptions) {
  return createMiddleware<{ Variables: { webhook: VerifiedWebhook } }>(
    async (c, next) => {
      const body = await c.req.text();
      try {
        c.set("webhook", verifyWebhook(body, c.req.raw.headers, opts));
      } catch (err) {
        return c.json({
          error: err instanceof Error ? err.message : String(err),
        }, 401);
      }
      await next();
    },
  );
}
