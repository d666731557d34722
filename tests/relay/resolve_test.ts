import assert from "node:assert/strict";
import { resolveStep } from "../../relay/resolve.ts";
import type { ConfigRow, StepChain } from "../../relay/source.ts";

function chain(
  configs: Partial<ConfigRow>[],
  requestData: unknown = {},
): StepChain {
  return {
    step: {
      step_id: "step_1",
      context_id: "ctx_1",
      step_type: "media_buy_creation",
      tool_name: "create_media_buy",
      status: "completed",
      request_data: requestData,
      response_data: null,
      error_message: null,
      created_at_ms: 1000,
      completed_at_ms: 2000,
    },
    mappings: [{
      id: 1,
      object_type: "media_buy",
      object_id: "mb_1",
      step_id: "step_1",
      action: "create",
      created_at_ms: 1500,
    }],
    context: { context_id: "ctx_1", tenant_id: "t", principal_id: "p" },
    configs: configs.map((c, i) => ({
      id: `pnc_${i}`,
      tenant_id: "t",
      principal_id: "p",
      url: "https://buyer.example/hook",
      authentication_type: null,
      authentication_token: null,
      validation_token: null,
      webhook_secret: null,
      is_active: true,
      created_at_ms: 1000,
      ...c,
    })),
  };
}

const opts = { status: "completed", nullIsActive: false, allowPrivate: false };

Deno.test("resolveStep() takes URL and auth from request_data before the config row", () => {
  const r = resolveStep(
    chain([{
      authentication_type: "bearer",
      authentication_token: "row-token-0123456789abcdef0123456789",
    }], {
      push_notification_config: {
        url: "https://buyer.example/from-request",
        authentication: {
          schemes: ["HMAC-SHA256"],
          credentials: "rd-secret-0123456789abcdef0123456789",
        },
      },
    }),
    opts,
  );
  assert.deepEqual(r.targets.map((t) => [t.url, t.auth, t.url_from]), [[
    "https://buyer.example/from-request",
    {
      scheme: "HMAC-SHA256",
      credentials: "rd-secret-0123456789abcdef0123456789",
    },
    "request_data",
  ]]);
});

Deno.test("resolveStep() falls back to the config row and uses webhook_secret for HMAC", () => {
  const r = resolveStep(
    chain([{
      authentication_type: "hmac_sha256",
      webhook_secret: "s3cret-0123456789abcdef0123456789abc",
    }]),
    opts,
  );
  assert.deepEqual(r.targets[0]!.auth, {
    scheme: "HMAC-SHA256",
    credentials: "s3cret-0123456789abcdef0123456789abc",
  });
  assert.equal(r.targets[0]!.url_from, "config");
});

Deno.test("resolveStep() names an inactive config but still sends through an active one", () => {
  const r = resolveStep(
    chain([{ is_active: false }, { is_active: null }, {
      url: "https://other.example/h",
    }]),
    opts,
  );
  assert.equal(r.targets.length, 1);
  const named = r.findings.filter((f) => f.cause).map((f) => [f.cause, f.ok]);
  assert.deepEqual(named, [
    ["config_inactive", true],
    ["config_is_active_null", true],
  ]);
});

Deno.test("resolveStep() never shows secrets in a finding's rows", () => {
  const r = resolveStep(
    chain([{
      authentication_token: "tok-secret",
      webhook_secret: "wh-secret",
    }]),
    opts,
  );
  const text = JSON.stringify(r.findings);
  assert.ok(!text.includes("tok-secret") && !text.includes("wh-secret"));
});
