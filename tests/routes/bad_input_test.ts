/**
 * Bad input, table-driven: each request gets the right 4xx with the field named,
 * nothing is stored, and the relay keeps serving. The relay runs with production
 * rules (API token, private targets blocked).
 */
import assert from "node:assert/strict";
import {
  mediaBuy,
  openTestKv,
  startTestRelay,
  stepUpdate,
} from "../_helpers.ts";

const TOKEN = "api-token-0123456789abcdef";
const AUTH = { authorization: `Bearer ${TOKEN}` };
const URL_OK = "https://buyer.example/hook";
const UNKNOWN_ID = "msg_01M90VDAS9BKRWJZ77XDFMR664";

interface Case {
  name: string;
  method?: "GET" | "POST";
  path?: string;
  headers?: Record<string, string>;
  body?: unknown;
  status: number;
  field: string;
}

const withConfig = (pnc: Record<string, unknown>) =>
  mediaBuy(URL_OK, { push_notification_config: { url: URL_OK, ...pnc } });
const withAuth = (auth: Record<string, unknown>) =>
  withConfig({ authentication: auth });
const CREDS = "c".repeat(32);

const blockedLiterals = [
  "127.0.0.1",
  "10.0.0.1",
  "172.16.0.1",
  "192.168.1.1",
  "169.254.169.254",
  "100.64.0.1",
  "0.0.0.0",
  "192.0.0.1",
  "192.0.2.1",
  "198.18.0.1",
  "198.51.100.1",
  "203.0.113.1",
  "224.0.0.1",
  "240.0.0.1",
  "[::1]",
  "[::]",
  "[::ffff:127.0.0.1]",
  "[64:ff9b::a9fe:a9fe]",
  "[2001:db8::1]",
  "[fc00::1]",
  "[fd00:ec2::254]",
  "[fe80::1]",
  "[ff02::1]",
];

const cases: Case[] = [
  // Body shape.
  { name: "malformed JSON", body: "{not json", status: 400, field: "" },
  { name: "empty body", body: "", status: 400, field: "" },
  { name: "JSON null", body: "null", status: 400, field: "" },
  { name: "JSON array", body: "[]", status: 400, field: "" },
  { name: "JSON number", body: "42", status: 400, field: "" },
  {
    name: "missing type",
    body: { step_id: "s", status: "completed" },
    status: 400,
    field: "type",
  },
  {
    name: "unknown type",
    body: { type: "nope", step_id: "s" },
    status: 400,
    field: "type",
  },
  { name: "type not a string", body: { type: 7 }, status: 400, field: "type" },
  {
    name: "extra field",
    body: stepUpdate({ colour: "red" }),
    status: 400,
    field: "colour",
  },
  // workflow_step.updated fields.
  {
    name: "missing step_id",
    body: stepUpdate({ step_id: undefined }),
    status: 400,
    field: "step_id",
  },
  {
    name: "step_id a number",
    body: stepUpdate({ step_id: 12 }),
    status: 400,
    field: "step_id",
  },
  {
    name: "empty step_id",
    body: stepUpdate({ step_id: "" }),
    status: 400,
    field: "step_id",
  },
  {
    name: "huge step_id",
    body: stepUpdate({ step_id: "s".repeat(256) }),
    status: 400,
    field: "step_id",
  },
  {
    name: "missing status",
    body: stepUpdate({ status: undefined }),
    status: 400,
    field: "status",
  },
  {
    name: "status a number",
    body: stepUpdate({ status: 7 }),
    status: 400,
    field: "status",
  },
  {
    name: "huge status",
    body: stepUpdate({ status: "x".repeat(51) }),
    status: 400,
    field: "status",
  },
  {
    name: "bad completed_at",
    body: stepUpdate({ completed_at: "yesterday" }),
    status: 400,
    field: "completed_at",
  },
  {
    name: "result a string",
    body: stepUpdate({ result: "done" }),
    status: 400,
    field: "result",
  },
  {
    name: "huge message",
    body: stepUpdate({ message: "m".repeat(10_001) }),
    status: 400,
    field: "message",
  },
  {
    name: "error a number",
    body: stepUpdate({ error: 5 }),
    status: 400,
    field: "error",
  },
  // media_buy.created fields.
  {
    name: "empty tenant_id",
    body: mediaBuy(URL_OK, { tenant_id: "" }),
    status: 400,
    field: "tenant_id",
  },
  {
    name: "media_buy_id a number",
    body: mediaBuy(URL_OK, { media_buy_id: 1 }),
    status: 400,
    field: "media_buy_id",
  },
  {
    name: "missing principal_id",
    body: mediaBuy(URL_OK, { principal_id: undefined }),
    status: 400,
    field: "principal_id",
  },
  {
    name: "operation_id with spaces",
    body: mediaBuy(URL_OK, { operation_id: "has space" }),
    status: 400,
    field: "operation_id",
  },
  {
    name: "huge task_type",
    body: mediaBuy(URL_OK, { task_type: "t".repeat(101) }),
    status: 400,
    field: "task_type",
  },
  {
    name: "missing config",
    body: mediaBuy(URL_OK, { push_notification_config: undefined }),
    status: 400,
    field: "push_notification_config",
  },
  {
    name: "config a string",
    body: mediaBuy(URL_OK, { push_notification_config: URL_OK }),
    status: 400,
    field: "push_notification_config",
  },
  {
    name: "config extra field",
    body: withConfig({ secret: "x" }),
    status: 400,
    field: "push_notification_config.secret",
  },
  {
    name: "missing url",
    body: mediaBuy(URL_OK, { push_notification_config: {} }),
    status: 400,
    field: "push_notification_config.url",
  },
  {
    name: "ftp url",
    body: mediaBuy("ftp://buyer.example/x"),
    status: 400,
    field: "push_notification_config.url",
  },
  {
    name: "javascript url",
    body: mediaBuy("javascript:alert(1)"),
    status: 400,
    field: "push_notification_config.url",
  },
  {
    name: "url not a url",
    body: mediaBuy("not a url"),
    status: 400,
    field: "push_notification_config.url",
  },
  {
    name: "url with credentials",
    body: mediaBuy("https://user:pass@buyer.example/x"),
    status: 400,
    field: "push_notification_config.url",
  },
  {
    name: "url with a user only",
    body: mediaBuy("https://user@buyer.example/x"),
    status: 400,
    field: "push_notification_config.url",
  },
  {
    name: "huge url",
    body: mediaBuy(`https://buyer.example/${"p".repeat(2100)}`),
    status: 400,
    field: "push_notification_config.url",
  },
  {
    name: "url named localhost",
    body: mediaBuy("http://localhost:3001/x"),
    status: 400,
    field: "push_notification_config.url",
  },
  ...blockedLiterals.map((host): Case => ({
    name: `blocked literal ${host}`,
    body: mediaBuy(`http://${host}:8080/hook`),
    status: 400,
    field: "push_notification_config.url",
  })),
  {
    name: "short token",
    body: withConfig({ token: "short" }),
    status: 400,
    field: "push_notification_config.token",
  },
  {
    name: "token a number",
    body: withConfig({ token: 1234567890123456 }),
    status: 400,
    field: "push_notification_config.token",
  },
  {
    name: "unknown auth scheme",
    body: withAuth({ schemes: ["Basic"], credentials: CREDS }),
    status: 400,
    field: "push_notification_config.authentication.schemes.0",
  },
  {
    name: "no auth scheme",
    body: withAuth({ schemes: [], credentials: CREDS }),
    status: 400,
    field: "push_notification_config.authentication.schemes",
  },
  {
    name: "short HMAC credentials",
    body: withAuth({ schemes: ["HMAC-SHA256"], credentials: "short" }),
    status: 400,
    field: "push_notification_config.authentication.credentials",
  },
  {
    name: "short Bearer credentials",
    body: withAuth({ schemes: ["Bearer"], credentials: "c".repeat(31) }),
    status: 400,
    field: "push_notification_config.authentication.credentials",
  },
  {
    name: "missing credentials",
    body: withAuth({ schemes: ["Bearer"] }),
    status: 400,
    field: "push_notification_config.authentication.credentials",
  },
  // Transport and headers.
  {
    name: "non-UTF-8 bytes",
    body: new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]),
    status: 400,
    field: "",
  },
  {
    name: "oversize body",
    body: stepUpdate({ message: "x".repeat(70_000) }),
    status: 413,
    field: "",
  },
  {
    name: "text/plain body",
    headers: { "content-type": "text/plain" },
    body: stepUpdate(),
    status: 415,
    field: "header.content-type",
  },
  {
    name: "Idempotency-Key with spaces",
    headers: { "idempotency-key": "two words" },
    body: stepUpdate(),
    status: 400,
    field: "header.idempotency-key",
  },
  {
    name: "Idempotency-Key too long",
    headers: { "idempotency-key": "k".repeat(256) },
    body: stepUpdate(),
    status: 400,
    field: "header.idempotency-key",
  },
  {
    name: "missing token",
    headers: { authorization: "" },
    body: stepUpdate(),
    status: 401,
    field: "header.authorization",
  },
  {
    name: "wrong token",
    headers: { authorization: "Bearer wrong-token-0123456789ab" },
    body: stepUpdate(),
    status: 401,
    field: "header.authorization",
  },
  {
    name: "token with another scheme",
    headers: { authorization: `Basic ${TOKEN}` },
    body: stepUpdate(),
    status: 401,
    field: "header.authorization",
  },
  {
    name: "token on a read",
    method: "GET",
    path: "/v1/deliveries",
    headers: { authorization: "" },
    status: 401,
    field: "header.authorization",
  },
  // Queries and ids.
  {
    name: "limit not a number",
    method: "GET",
    path: "/v1/deliveries?limit=ten",
    status: 400,
    field: "query.limit",
  },
  {
    name: "limit zero",
    method: "GET",
    path: "/v1/deliveries?limit=0",
    status: 400,
    field: "query.limit",
  },
  {
    name: "limit too big",
    method: "GET",
    path: "/v1/deliveries?limit=5000",
    status: 400,
    field: "query.limit",
  },
  {
    name: "limit fractional",
    method: "GET",
    path: "/v1/deliveries?limit=1.5",
    status: 400,
    field: "query.limit",
  },
  {
    name: "unknown status filter",
    method: "GET",
    path: "/v1/deliveries?status=lost",
    status: 400,
    field: "query.status",
  },
  {
    name: "malformed cursor",
    method: "GET",
    path: "/v1/deliveries?cursor=abc",
    status: 400,
    field: "query.cursor",
  },
  {
    name: "targets limit not a number",
    method: "GET",
    path: "/v1/targets?limit=x",
    status: 400,
    field: "query.limit",
  },
  {
    name: "malformed delivery id",
    method: "GET",
    path: "/v1/deliveries/nope",
    status: 400,
    field: "param.id",
  },
  {
    name: "unknown delivery id",
    method: "GET",
    path: `/v1/deliveries/${UNKNOWN_ID}`,
    status: 404,
    field: "param.id",
  },
  {
    name: "redeliver unknown id",
    path: `/v1/deliveries/${UNKNOWN_ID}/redeliver`,
    body: {},
    status: 404,
    field: "param.id",
  },
  {
    name: "recover without since",
    path: "/v1/deliveries/recover",
    body: {},
    status: 400,
    field: "since",
  },
  {
    name: "recover bad since",
    path: "/v1/deliveries/recover",
    body: { since: "yesterday" },
    status: 400,
    field: "since",
  },
  {
    name: "enable malformed target",
    path: "/v1/targets/nope/enable",
    body: {},
    status: 400,
    field: "param.id",
  },
  {
    name: "enable unknown target",
    path: "/v1/targets/tgt_000000000000000000000000/enable",
    body: {},
    status: 404,
    field: "param.id",
  },
];

async function stored(kv: Deno.Kv): Promise<number> {
  let n = 0;
  for await (const _ of kv.list({ prefix: [] })) n++;
  return n;
}

Deno.test("the bad-input table has at least 40 cases", () => {
  assert.ok(cases.length >= 40, `${cases.length} cases`);
});

for (const c of cases) {
  Deno.test(`bad input: ${c.name} → ${c.status} naming "${c.field || "(body)"}"`, async () => {
    await using store = await openTestKv();
    await using relay = startTestRelay(store.kv, {
      apiToken: TOKEN,
      env: { RELAY_ALLOW_PRIVATE_TARGETS: "0" },
    });
    const method = c.method ?? "POST";
    const body = c.body === undefined || typeof c.body === "string" ||
        c.body instanceof Uint8Array
      ? c.body as BodyInit | undefined
      : JSON.stringify(c.body);
    const res = await relay.app.request(c.path ?? "/v1/events", {
      method,
      headers: {
        ...AUTH,
        ...(method === "POST" ? { "content-type": "application/json" } : {}),
        ...c.headers,
      },
      body: method === "POST" ? body : undefined,
    });
    assert.equal(res.status, c.status);
    const { error } = await res.json();
    assert.equal(typeof error.message, "string");
    assert.ok(
      error.issues.some((i: { path: string }) => i.path === c.field),
      `expected an issue at "${c.field}", got ${JSON.stringify(error.issues)}`,
    );
    assert.equal(await stored(store.kv), 0, "nothing stored");
    const ok = await relay.post("/v1/events", mediaBuy(URL_OK), AUTH);
    assert.equal(ok.status, 202, "the relay keeps serving");
  });
}
