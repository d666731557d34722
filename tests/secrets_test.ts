import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "../config.ts";
import {
  HMAC_SECRET,
  mediaBuy,
  openTestKv,
  SECRET,
  startReceiver,
  startTestRelay,
  stepUpdate,
  waitFor,
} from "./_helpers.ts";

const TOKEN = "api-token-that-must-not-leak-42";
const BEARER = "bearer-credential-must-not-leak-0123456789";

Deno.test("no secret appears in logs, API answers or error messages", async () => {
  await using store = await openTestKv();
  await using hmac = startReceiver(undefined, { adcpSecret: HMAC_SECRET });
  await using bearer = startReceiver((hit) =>
    new Response("no", { status: hit.n === 1 ? 500 : 200 })
  );
  await using relay = startTestRelay(store.kv, { apiToken: TOKEN });
  const auth = { authorization: `Bearer ${TOKEN}` };
  const seen: string[] = [];
  const call = async (path: string, body?: unknown, headers = auth) => {
    const res = body === undefined
      ? await relay.get(path, headers)
      : await relay.post(path, body, headers);
    seen.push(
      `${res.status} ${[...res.headers].join(";")} ${await res.text()}`,
    );
    return res;
  };
  const hmacConfig = {
    url: hmac.url,
    authentication: { schemes: ["HMAC-SHA256"], credentials: HMAC_SECRET },
  };
  const bearerConfig = {
    url: bearer.url,
    authentication: { schemes: ["Bearer"], credentials: BEARER },
  };
  await call(
    "/v1/events",
    mediaBuy(hmac.url, { push_notification_config: hmacConfig }),
  );
  await call(
    "/v1/events",
    mediaBuy(bearer.url, {
      media_buy_id: "mb_2",
      push_notification_config: bearerConfig,
    }),
  );
  // Rejected requests that carry secrets in other fields.
  await call(
    "/v1/events",
    mediaBuy("ftp://x/", {
      push_notification_config: { ...hmacConfig, url: "ftp://x/" },
    }),
  );
  await call(
    "/v1/events",
    mediaBuy(bearer.url, {
      push_notification_config: {
        ...bearerConfig,
        authentication: { schemes: ["Digest"], credentials: BEARER },
      },
    }),
  );
  await call("/v1/events", stepUpdate(), { authorization: "Bearer nope" });
  await call("/v1/events", stepUpdate(), {
    authorization: `Bearer ${TOKEN}x`,
  });
  const answer = await call("/v1/events", stepUpdate());
  assert.equal(answer.status, 202);
  await waitFor(() =>
    hmac.verified().length === 1 &&
    bearer.hits.filter((h) => h.status === 200).length === 1
  );
  await relay.worker.idle();
  const list = await (await relay.get("/v1/deliveries", auth)).json();
  seen.push(JSON.stringify(list));
  for (const d of list.items) await call(`/v1/deliveries/${d.id}`);
  await call("/v1/targets");
  await call("/metrics");
  await call("/openapi.json");
  await call("/healthz");
  try {
    loadConfig({
      RELAY_API_TOKEN: "short-token",
      RELAY_SIGNING_SECRET: `${SECRET},whsec_short`,
    }, "start");
    assert.fail("expected a ConfigError");
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    seen.push(err.message);
  }

  const haystack = `${relay.rawLogs()}\n${seen.join("\n")}`;
  assert.ok(
    relay.logs().some((l) => l.msg === "attempt"),
    "logs were captured",
  );
  assert.ok(seen.length >= 12);
  for (
    const secret of [
      TOKEN,
      SECRET,
      SECRET.slice("whsec_".length),
      "short-token",
      HMAC_SECRET,
      BEARER,
    ]
  ) {
    assert.equal(
      haystack.includes(secret),
      false,
      `leaked ${secret.slice(0, 8)}…`,
    );
  }
  // The receivers did get what they were owed.
  assert.equal(
    bearer.hits.at(-1)!.headers.get("authorization"),
    `Bearer ${BEARER}`,
  );
});
