/**
 * The receiver kit: verify a relay delivery on its raw body, before parsing it.
 * Standard Webhooks signatures are checked with the published `standardwebhooks`
 * package; AdCP's legacy `X-ADCP-Signature` with an HMAC of our own.
 *
 * @example
 * ```ts
 * const body = await request.text();
 * const { id, payload } = verifyWebhook(body, request.headers, { secrets: ["whsec_…"] });
 * ```
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { Webhook, WebhookVerificationError } from "standardwebhooks";

export { WebhookVerificationError };

/** What to check a delivery against. */
export interface VerifyOptions {
  /** The relay's `whsec_` secrets; any one matching is enough (rotation). */
  secrets: readonly string[];
  /** When set, `X-ADCP-Signature`/`X-ADCP-Timestamp` must also be valid for it. */
  adcpSecret?: string;
  /** Clock for the AdCP timestamp window (Standard Webhooks uses the real clock). */
  now?: () => number;
}

/** A verified delivery. */
export interface VerifiedWebhook {
  id: string;
  timestamp: number;
  payload: unknown;
}

const TOLERANCE_S = 300;

/**
 * Verifies a delivery's signatures over its exact body.
 *
 * @param body The raw request body, as text.
 * @param headers The request headers.
 * @param opts Secrets and the optional AdCP HMAC secret.
 * @returns The webhook id, attempt timestamp and parsed payload.
 * @throws {WebhookVerificationError} When a header is missing or a signature is wrong or stale.
 */
export function verifyWebhook(
  body: string,
  headers: Headers | Record<string, string>,
  opts: VerifyOptions,
): VerifiedWebhook {
  const h = headers instanceof Headers
    ? Object.fromEntries(headers)
    : _lower(headers);
  let payload: unknown;
  let lastError: unknown = new WebhookVerificationError("No secret configured");
  const matched = opts.secrets.some((secret) => {
    try {
      payload = new Webhook(secret).verify(body, h);
      return true;
    } catch (err) {
      lastError = err;
      return false;
    }
  });
  if (!matched) throw lastError;
  if (opts.adcpSecret !== undefined) {
    _verifyAdcp(body, h, opts.adcpSecret, (opts.now ?? Date.now)());
  }
  return {
    id: h["webhook-id"]!,
    timestamp: Number(h["webhook-timestamp"]),
    payload,
  };
}

function _lower(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]),
  );
}

function _verifyAdcp(
  body: string,
  h: Record<string, string>,
  secret: string,
  now: number,
) {
  const sig = h["x-adcp-signature"];
  const ts = h["x-adcp-timestamp"];
  if (!sig || !ts) {
    throw new WebhookVerificationError(
      "Missing X-ADCP-Signature or X-ADCP-Timestamp",
    );
  }
  if (!/^\d+$/.test(ts)) {
    throw new WebhookVerificationError("X-ADCP-Timestamp is not unix seconds");
  }
  if (Math.abs(now / 1000 - Number(ts)) > TOLERANCE_S) {
    throw new WebhookVerificationError(
      "X-ADCP-Timestamp outside the 5 minute window",
    );
  }
  const expected = Buffer.from(
    `sha256=${
      createHmac("sha256", secret).update(`${ts}.${body}`).digest("hex")
    }`,
  );
  const given = Buffer.from(sig);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new WebhookVerificationError("X-ADCP-Signature does not match");
  }
}
