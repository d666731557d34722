import assert from "node:assert/strict";
import { Webhook } from "standardwebhooks";
import { verifyWebhook } from "../../receiver/verify.ts";
import {
  adcpSignature,
  attemptHeaders,
  createSigner,
} from "../../relay/sign.ts";
import { HMAC_SECRET, SECRET } from "../_helpers.ts";

const OTHER = "whsec_" + btoa("another-secret-of-32-bytes-long!");

Deno.test("createSigner() matches the Standard Webhooks golden vector", () => {
  const sig = createSigner([SECRET]).sign(
    "msg_p5jXN8AQM9LWM0D4loKWxJek",
    1614265330,
    '{"test": 2432232314}',
  );
  assert.equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
});

Deno.test("createSigner() signs with every secret so either verifies during rotation", () => {
  const now = Math.floor(Date.now() / 1000);
  const headers = attemptHeaders(createSigner([OTHER, SECRET]), {
    id: "msg_1",
    timestampS: now,
    body: "{}",
  });
  assert.equal(headers["webhook-signature"]!.split(" ").length, 2);
  for (const secret of [SECRET, OTHER]) {
    assert.deepEqual(new Webhook(secret).verify("{}", headers), {});
  }
});

Deno.test("createSigner() refuses to sign without a secret", () => {
  assert.throws(() => createSigner([]), RangeError);
});

Deno.test("adcpSignature() is sha256= hex over ts.body and verifyWebhook() checks it", async () => {
  const { createHmac } = await import("node:crypto");
  const hex = createHmac("sha256", "secret").update("1700000000.{}").digest(
    "hex",
  );
  assert.equal(adcpSignature("secret", 1700000000, "{}"), `sha256=${hex}`);
  assert.match(adcpSignature(HMAC_SECRET, 1, "x"), /^sha256=[0-9a-f]{64}$/);
  const now = Date.now();
  const headers = attemptHeaders(createSigner([SECRET]), {
    id: "msg_1",
    timestampS: Math.floor(now / 1000),
    body: '{"a":1}',
    auth: { scheme: "HMAC-SHA256", credentials: HMAC_SECRET },
  });
  const ok = verifyWebhook('{"a":1}', headers, {
    secrets: [SECRET],
    adcpSecret: HMAC_SECRET,
    now: () => now,
  });
  assert.deepEqual(ok.payload, { a: 1 });
  assert.throws(
    () => verifyWebhook('{"a":2}', headers, { secrets: [OTHER, SECRET] }),
    /No matching signature/,
  );
  assert.throws(
    () =>
      verifyWebhook('{"a":1}', headers, {
        secrets: [SECRET],
        adcpSecret: "wrong-secret-wrong-secret-wrong!",
      }),
    /X-ADCP-Signature does not match/,
  );
  assert.throws(
    () =>
      verifyWebhook('{"a":1}', headers, {
        secrets: [SECRET],
        adcpSecret: HMAC_SECRET,
        now: () => now + 301_000,
      }),
    /window/,
  );
});
