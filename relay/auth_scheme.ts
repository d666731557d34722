/**
 * The one reading of an AdCP authentication scheme, shared by the HTTP API and the
 * Postgres path, and the credential length both require.
 */
import type { PushAuth } from "./types.ts";

/** The schemes the relay signs with. */
export const AUTH_SCHEMES = ["HMAC-SHA256", "Bearer"] as const;

/** The shortest credential accepted (the HTTP schema's and the sync's minimum). */
export const MIN_CREDENTIAL_CHARS = 32;

/**
 * Normalises an authentication scheme as buyers send it or the agent stores it:
 * case, `-`, `_` and spaces are ignored, so `HMAC-SHA256`, `hmac_sha256`,
 * `HMACSHA256` and the short `hmac` are HMAC-SHA256; `Bearer`, `bearer` are Bearer.
 *
 * @param raw The value as given.
 * @returns The scheme; `null` for none (empty or `none`); `undefined` when unknown.
 * @example
 * ```ts
 * normaliseAuthScheme("hmac_sha256"); // "HMAC-SHA256"
 * normaliseAuthScheme("none"); // null
 * normaliseAuthScheme("Basic"); // undefined
 * ```
 */
export function normaliseAuthScheme(
  raw: string | null | undefined,
): PushAuth["scheme"] | null | undefined {
  const v = (raw ?? "").trim().toLowerCase().replace(/[-_\s]/g, "");
  if (v === "" || v === "none") return null;
  if (v === "hmacsha256" || v === "hmac") return "HMAC-SHA256";
  if (v === "bearer") return "Bearer";
  return undefined;
}
