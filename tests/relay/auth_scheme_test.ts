import assert from "node:assert/strict";
import { normaliseAuthScheme } from "../../relay/auth_scheme.ts";

Deno.test("normaliseAuthScheme() accepts the casings buyers and the agent use and names the rest", () => {
  for (
    const raw of ["HMAC-SHA256", "hmac_sha256", "hmac-sha256", "HMAC", "hmac"]
  ) {
    assert.equal(normaliseAuthScheme(raw), "HMAC-SHA256", raw);
  }
  for (const raw of ["Bearer", "bearer", "BEARER", " bearer "]) {
    assert.equal(normaliseAuthScheme(raw), "Bearer", raw);
  }
  for (const raw of [null, undefined, "", "none", "NONE"]) {
    assert.equal(normaliseAuthScheme(raw), null, String(raw));
  }
  for (const raw of ["basic", "Digest", "hmac-sha1"]) {
    assert.equal(normaliseAuthScheme(raw), undefined, raw);
  }
});
