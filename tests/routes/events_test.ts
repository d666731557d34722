import assert from "node:assert/strict";
import {
  mediaBuy,
  openTestKv,
  startTestRelay,
  stepUpdate,
} from "../_helpers.ts";

const URL_OK = "http://127.0.0.1:9/hook";

async function stored(kv: Deno.Kv): Promise<number> {
  let n = 0;
  for await (const _ of kv.list({ prefix: [] })) n++;
  return n;
}

const badBodies: [string, unknown, string][] = [
  ["unknown type", { type: "nope", step_id: "s" }, "type"],
  ["missing step_id", stepUpdate({ step_id: undefined }), "step_id"],
  ["wrong status type", stepUpdate({ status: 7 }), "status"],
  ["extra field", stepUpdate({ colour: "red" }), "colour"],
  [
    "bad completed_at",
    stepUpdate({ completed_at: "yesterday" }),
    "completed_at",
  ],
  ["result not an object", stepUpdate({ result: "done" }), "result"],
  [
    "missing config",
    mediaBuy(URL_OK, { push_notification_config: undefined }),
    "push_notification_config",
  ],
  [
    "url not http",
    mediaBuy("ftp://example.com/x"),
    "push_notification_config.url",
  ],
  [
    "url with credentials",
    mediaBuy("http://u:p@127.0.0.1/x"),
    "push_notification_config.url",
  ],
  ["url not a url", mediaBuy("not a url"), "push_notification_config.url"],
  [
    "short token",
    mediaBuy(URL_OK, {
      push_notification_config: { url: URL_OK, token: "short" },
    }),
    "push_notification_config.token",
  ],
  [
    "unknown auth scheme",
    mediaBuy(URL_OK, {
      push_notification_config: {
        url: URL_OK,
        authentication: { schemes: ["Basic"], credentials: "x".repeat(32) },
      },
    }),
    "push_notification_config.authentication.schemes.0",
  ],
  [
    "scheme none (omit authentication instead)",
    mediaBuy(URL_OK, {
      push_notification_config: {
        url: URL_OK,
        authentication: { schemes: ["none"], credentials: "x".repeat(32) },
      },
    }),
    "push_notification_config.authentication.schemes.0",
  ],
  [
    "short HMAC credentials",
    mediaBuy(URL_OK, {
      push_notification_config: {
        url: URL_OK,
        authentication: { schemes: ["HMAC-SHA256"], credentials: "short" },
      },
    }),
    "push_notification_config.authentication.credentials",
  ],
  [
    "bad operation_id",
    mediaBuy(URL_OK, { operation_id: "has space" }),
    "operation_id",
  ],
  ["empty tenant", mediaBuy(URL_OK, { tenant_id: "" }), "tenant_id"],
];

for (const [name, body, path] of badBodies) {
  Deno.test(`POST /v1/events rejects ${name} with 400 naming ${path}`, async () => {
    await using store = await openTestKv();
    await using relay = startTestRelay(store.kv);
    const res = await relay.post("/v1/events", body);
    assert.equal(res.status, 400);
    assert.match(res.headers.get("content-type")!, /application\/json/);
    const { error } = await res.json();
    assert.equal(error.code, "invalid_request");
    assert.ok(
      error.issues.some((i: { path: string }) => i.path === path),
      `expected an issue at ${path}, got ${JSON.stringify(error.issues)}`,
    );
    assert.equal(await stored(store.kv), 0, "nothing stored");
  });
}

Deno.test("POST /v1/events refuses malformed JSON, non-JSON, non-UTF-8 and oversize bodies", async () => {
  await using store = await openTestKv();
  await using relay = startTestRelay(store.kv);
  const malformed = await relay.post("/v1/events", "{not json");
  assert.equal(malformed.status, 400);
  const notJson = await relay.app.request("/v1/events", {
    method: "POST",
    body: "x",
    headers: { "content-type": "text/plain" },
  });
  assert.equal(notJson.status, 415);
  assert.equal(
    (await notJson.json()).error.issues[0].path,
    "header.content-type",
  );
  const latin1 = await relay.app.request("/v1/events", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x7d]),
  });
  assert.equal(latin1.status, 400);
  assert.match((await latin1.json()).error.message, /UTF-8/);
  const huge = await relay.post(
    "/v1/events",
    stepUpdate({ message: "x".repeat(70_000) }),
  );
  assert.equal(huge.status, 413);
  assert.equal((await huge.json()).error.code, "body_too_large");
  assert.equal(await stored(store.kv), 0);
});

Deno.test("POST /v1/events names what it skipped", async () => {
  await using store = await openTestKv();
  await using relay = startTestRelay(store.kv);
  const unmapped =
    await (await relay.post("/v1/events", stepUpdate({ step_id: "step_x" })))
      .json();
  assert.deepEqual(unmapped.deliveries, []);
  assert.deepEqual(unmapped.skipped, [{
    reason: "no_mapping",
    step_id: "step_x",
  }]);
  const odd =
    await (await relay.post("/v1/events", stepUpdate({ status: "frozen" })))
      .json();
  assert.deepEqual(odd.skipped, [{
    reason: "unmapped_status",
    status: "frozen",
  }]);
  const skips = relay.logs().filter((l) => l.msg === "delivery skipped").map((
    l,
  ) => l.reason);
  assert.deepEqual(skips, ["no_mapping", "unmapped_status"]);
});

Deno.test("Idempotency-Key replays the first answer and refuses a different body", async () => {
  await using store = await openTestKv();
  await using relay = startTestRelay(store.kv);
  await relay.post("/v1/events", mediaBuy(URL_OK));
  const key = { "idempotency-key": "evt-42" };
  const first = await (await relay.post("/v1/events", stepUpdate(), key))
    .json();
  const replay = await (await relay.post("/v1/events", stepUpdate(), key))
    .json();
  assert.deepEqual(replay, first);
  const other = await relay.post(
    "/v1/events",
    stepUpdate({ status: "failed" }),
    key,
  );
  assert.equal(other.status, 409);
  assert.equal((await other.json()).error.code, "idempotency_key_reused");
  const bad = await relay.post("/v1/events", stepUpdate(), {
    "idempotency-key": "naïve key",
  });
  assert.equal(bad.status, 400);
  assert.equal(
    (await bad.json()).error.issues[0].path,
    "header.idempotency-key",
  );
});

Deno.test("production rules block private targets and require the API token", async () => {
  await using store = await openTestKv();
  await using relay = startTestRelay(store.kv, {
    env: { RELAY_ALLOW_PRIVATE_TARGETS: "0" },
    apiToken: "secret-token-0123456789",
  });
  const anon = await relay.post(
    "/v1/events",
    mediaBuy("https://buyer.example/x"),
  );
  assert.equal(anon.status, 401);
  const wrong = await relay.post(
    "/v1/events",
    mediaBuy("https://buyer.example/x"),
    { authorization: "Bearer nope" },
  );
  assert.equal(wrong.status, 401);
  const auth = { authorization: "Bearer secret-token-0123456789" };
  for (
    const url of [
      "http://127.0.0.1/x",
      "http://10.1.2.3/x",
      "http://[::1]/x",
      "http://169.254.169.254/x",
      "http://localhost/x",
    ]
  ) {
    const res = await relay.post("/v1/events", mediaBuy(url), auth);
    assert.equal(res.status, 400, url);
    assert.equal(
      (await res.json()).error.issues[0].path,
      "push_notification_config.url",
    );
  }
  assert.equal(
    (await relay.post("/v1/events", mediaBuy("https://buyer.example/x"), auth))
      .status,
    202,
  );
  assert.equal(
    (await relay.get("/healthz")).status,
    200,
    "health needs no token",
  );
});

Deno.test("/openapi.json documents the events route", async () => {
  await using store = await openTestKv();
  await using relay = startTestRelay(store.kv);
  const doc = await (await relay.get("/openapi.json")).json();
  assert.ok(doc.paths["/v1/events"].post);
  assert.ok(doc.paths["/v1/deliveries/{id}"].get);
  assert.ok(doc.paths["/healthz"].get);
  assert.ok(doc.paths["/v1/explain/{object_type}/{object_id}"].get);
  assert.ok(doc.paths["/metrics"].get);
  assert.ok(doc.components.schemas.PushNotificationConfig);
});
