/** One JSON error shape for every failure, and the mapper `app.onError` uses. */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { IdempotencyConflictError } from "../relay/intake.ts";
import { DeliveryNotFoundError } from "../relay/replay.ts";
import type { Logger } from "../relay/log.ts";

/** A field that was wrong and what was expected of it. */
export interface Issue {
  path: string;
  message: string;
}

/** A request the relay refuses, with the fields at fault. */
export class RequestError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly issues: Issue[] = [],
  ) {
    super(message);
    this.name = "RequestError";
  }
}

/**
 * Builds a 400 for fields that failed validation.
 *
 * @param issues Each wrong field with its path (dot-joined) and message.
 * @returns The error to throw.
 */
export function invalid(issues: Issue[]): RequestError {
  const summary = issues.map((i) => `${i.path || "(body)"}: ${i.message}`).join(
    "; ",
  );
  return new RequestError(400, "invalid_request", summary, issues);
}

/**
 * Converts zod issues to our field paths.
 *
 * @param issues zod's issues.
 * @param prefix Where the validated value sits (`query`, `header`), if not the body.
 * @returns Our issues.
 */
export function fromZod(
  issues: readonly {
    path: readonly PropertyKey[];
    message: string;
    keys?: readonly string[];
  }[],
  prefix?: string,
): Issue[] {
  return issues.flatMap((i) =>
    (i.keys ?? [undefined]).map((extra) => ({
      path: [prefix, ...i.path.map(String), extra].filter(Boolean).join("."),
      message: extra === undefined ? i.message : "unknown field",
    }))
  );
}

/**
 * Maps any thrown error to the JSON error shape and a status.
 *
 * @param err What was thrown.
 * @param c The request context.
 * @param log Where unexpected errors are logged.
 * @returns The response.
 */
export function errorResponse(err: Error, c: Context, log: Logger): Response {
  if (err instanceof RequestError) {
    return c.json({
      error: { code: err.code, message: err.message, issues: err.issues },
    }, err.status);
  }
  if (err instanceof DeliveryNotFoundError) {
    return c.json({
      error: {
        code: "not_found",
        message: err.message,
        issues: [{ path: "param.id", message: "no such delivery" }],
      },
    }, 404);
  }
  if (err instanceof IdempotencyConflictError) {
    return c.json({
      error: {
        code: "idempotency_key_reused",
        message: err.message,
        issues: [{
          path: "header.idempotency-key",
          message: "used before with a different body",
        }],
      },
    }, 409);
  }
  if (err instanceof HTTPException) {
    const status = err.status as ContentfulStatusCode;
    const code = status === 413
      ? "body_too_large"
      : status === 401
      ? "unauthorized"
      : "bad_request";
    // A body hono could not parse (malformed or empty JSON): the body is the field.
    const issues = status === 400 ? [{ path: "", message: err.message }] : [];
    return c.json({ error: { code, message: err.message, issues } }, status);
  }
  log.error("unhandled error", { path: c.req.path, error: String(err) });
  return c.json({
    error: { code: "internal", message: "Internal error", issues: [] },
  }, 500);
}
