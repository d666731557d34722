/**
 * Signing of outgoing webhooks: Standard Webhooks `v1` for every delivery, plus AdCP's
 * legacy HMAC or Bearer header when the buyer's config asks for it. Pure: the caller
 * supplies the attempt time.
 */
import { createHmac } from "node:crypto";
import { Webhook } from "standardwebhooks";
import type { PushAuth } from "./types.ts";

/** Signs `${id}.${timestamp}.${body}` with each secret (current first). */
export interface Signer {
  /**
   * @param id The `webhook-id`.
   * @param timestampS Unix seconds of this attempt.
   * @param body The exact bytes that will be sent.
   * @returns Space-joined `v1,<base64>` entries, one per secret.
   */
  sign(id: string, timestampS: number, body: string): string;
}

/**
 * Creates a {@link Signer} for the given `whsec_` secrets.
 *
 * @param secrets One or more Standard Webhooks secrets; all are used, for rotation.
 * @returns The signer.
 * @throws {RangeError} When no secret is given.
 * @example
 * ```ts
 * const signer = createSigner(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]);
 * signer.sign("msg_1", 1614265330, '{"test": 2432232314}');
 * ```
 */
export function createSigner(secrets: readonly string[]): Signer {
  if (secrets.length === 0) {
    throw new RangeError("Cannot create signer: no signing secret given");
  }
  const hooks = secrets.map((s) => new Webhook(s));
  return {
    sign(id, timestampS, body) {
      const at = new Date(timestampS * 1000);
      return hooks.map((h) => h.sign(id, at, body)).join(" ");
    },
  };
}

/**
 * Computes AdCP's legacy `X-ADCP-Signature` value.
 *
 * @param secret The config's HMAC credentials.
 * @param timestampS Unix seconds, as sent in `X-ADCP-Timestamp`.
 * @param body The exact bytes sent.
 * @returns `sha256=<lowercase hex>` over `"{ts}.{body}"`.
 */
export function adcpSignature(
  secret: string,
  timestampS: number,
  body: string,
): string {
  const mac = createHmac("sha256", secret).update(`${timestampS}.${body}`);
  return `sha256=${mac.digest("hex")}`;
}

/**
 * Builds every header of one attempt.
 *
 * @param signer Signs with the relay's secrets.
 * @param msg The delivery id, attempt time, body and optional AdCP auth.
 * @returns Headers ready for `fetch`.
 */
export function attemptHeaders(
  signer: Signer,
  msg: { id: string; timestampS: number; body: string; auth?: PushAuth },
): Record<string, string> {
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "user-agent": "webhook-relay/1",
    "webhook-id": msg.id,
    "webhook-timestamp": String(msg.timestampS),
    "webhook-signature": signer.sign(msg.id, msg.timestampS, msg.body),
  };
  if (msg.auth?.scheme === "HMAC-SHA256") {
    headers["x-adcp-timestamp"] = String(msg.timestampS);
    headers["x-adcp-signature"] = adcpSignature(
      msg.auth.credentials,
      msg.timestampS,
      msg.body,
    );
  } else if (msg.auth?.scheme === "Bearer") {
    headers["authorization"] = `Bearer ${msg.auth.credentials}`;
  }
  return headers;
}
