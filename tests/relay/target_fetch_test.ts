import assert from "node:assert/strict";
import { parseAllowlist } from "../../relay/ip_ranges.ts";
import {
  createTargetFetch,
  systemResolve,
  TargetBlockedError,
} from "../../relay/target_fetch.ts";
import {
  mediaBuy,
  openTestKv,
  startReceiver,
  startTestRelay,
  stepUpdate,
  waitFor,
} from "../_helpers.ts";

const prod = (allow = "") => ({
  allowPrivate: false,
  allowlist: parseAllowlist(allow).allowlist,
});
const post = { method: "POST", body: "{}" };

Deno.test("systemResolve() resolves localhost to loopback here", async () => {
  const found = await systemResolve("localhost");
  assert.ok(found.includes("127.0.0.1"), String(found));
});

Deno.test("createTargetFetch() refuses a name that resolves to 127.0.0.1 and never connects", async () => {
  await using receiver = startReceiver();
  const port = new URL(receiver.url).port;
  const guarded = createTargetFetch({ policy: prod() });
  for (const host of ["localhost", "localhost.", "api.localhost"]) {
    await assert.rejects(
      guarded(`http://${host}:${port}/hook`, post),
      (err: Error) =>
        err instanceof TargetBlockedError &&
        /resolves to (127\.0\.0\.1|::1), a loopback/.test(err.message),
      host,
    );
  }
  for (const literal of ["127.0.0.1", "[::ffff:7f00:1]", "[::1]"]) {
    await assert.rejects(
      guarded(`http://${literal}:${port}/hook`, post),
      TargetBlockedError,
      literal,
    );
  }
  assert.equal(receiver.hits.length, 0);
});

Deno.test("createTargetFetch() connects to the address it checked, not to a second lookup", async () => {
  const hosts: (string | null)[] = [];
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) => {
      hosts.push(req.headers.get("host"));
      return new Response(`pinned ${new URL(req.url).search}`);
    },
  );
  const port = server.addr.port;
  const lookups: string[] = [];
  // rebind.test exists in no DNS: the request can only reach the receiver through
  // the address the guard checked.
  const guarded = createTargetFetch({
    policy: prod("127.0.0.1/32"),
    resolve: (host) => {
      lookups.push(host);
      return Promise.resolve(["127.0.0.1"]);
    },
  });
  const res = await guarded(`http://rebind.test:${port}/hook?x=1`, {
    ...post,
    headers: { "content-type": "application/json" },
  });
  assert.equal(res.status, 200);
  assert.equal(await res.text(), "pinned ?x=1");
  assert.deepEqual(lookups, ["rebind.test"]);
  assert.deepEqual(hosts, [`rebind.test:${port}`]);
  const mixed = createTargetFetch({
    policy: prod("127.0.0.1/32"),
    resolve: () => Promise.resolve(["127.0.0.1", "10.0.0.7"]),
  });
  await assert.rejects(
    mixed(`http://rebind.test:${port}/hook`, post),
    /resolves to 10\.0\.0\.7/,
  );
});

Deno.test("createTargetFetch() pins HTTPS too and still verifies the certificate name", async () => {
  const dir = new URL("../fixtures/", import.meta.url);
  const cert = await Deno.readTextFile(new URL("buyer_test.crt", dir));
  const key = await Deno.readTextFile(new URL("buyer_test.key", dir));
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, cert, key, onListen() {} },
    (req) => new Response(`host=${req.headers.get("host")}`),
  );
  try {
    const guarded = createTargetFetch({
      policy: prod("127.0.0.1/32"),
      resolve: () => Promise.resolve(["127.0.0.1"]),
      caCerts: [cert],
    });
    const port = server.addr.port;
    const res = await guarded(`https://buyer.test:${port}/hook`, post);
    assert.equal(await res.text(), `host=buyer.test:${port}`);
    await assert.rejects(
      guarded(`https://other.test:${port}/hook`, post),
      /altnames|certificate|name/i,
    );
  } finally {
    await server.shutdown();
  }
});

Deno.test("production relay: a name resolving to loopback is blocked at send time, allow-listed it is delivered", async () => {
  await using receiver = startReceiver();
  const port = new URL(receiver.url).port;
  const url = `http://buyer.test:${port}/hook`;
  const resolve = () => Promise.resolve(["127.0.0.1"]);
  {
    await using store = await openTestKv();
    await using relay = startTestRelay(store.kv, {
      env: { RELAY_ALLOW_PRIVATE_TARGETS: "0" },
      resolve,
    });
    assert.equal((await relay.post("/v1/events", mediaBuy(url))).status, 202);
    const answer = await (await relay.post("/v1/events", stepUpdate())).json();
    const id = answer.deliveries[0].id;
    const d = await waitFor(async () => {
      const d = await (await relay.get(`/v1/deliveries/${id}`)).json();
      return d.status === "dead" && d;
    });
    assert.equal(d.attempts.length, 1, "not retried");
    assert.match(d.attempts[0].error, /buyer\.test resolves to 127\.0\.0\.1/);
    assert.match(d.last_error, /target blocked, not retried/);
    assert.equal(receiver.hits.length, 0);
    const literal = await relay.post(
      "/v1/events",
      mediaBuy("http://127.0.0.1:1/x", { media_buy_id: "mb_2" }),
    );
    assert.equal(literal.status, 400, "literals are refused at intake");
  }
  {
    await using store = await openTestKv();
    await using relay = startTestRelay(store.kv, {
      env: {
        RELAY_ALLOW_PRIVATE_TARGETS: "0",
        RELAY_TARGET_ALLOWLIST: "127.0.0.0/8",
      },
      resolve,
    });
    await relay.post("/v1/events", mediaBuy(url));
    await relay.post("/v1/events", stepUpdate());
    await waitFor(() => receiver.verified().length === 1);
    assert.equal(
      (await relay.post(
        "/v1/events",
        mediaBuy(`http://127.0.0.1:${port}/x`, { media_buy_id: "mb_2" }),
      )).status,
      202,
      "an allow-listed literal is accepted at intake",
    );
  }
});

Deno.test("createTargetFetch() honours the abort signal on a pinned connection", async () => {
  const never = Promise.withResolvers<Response>();
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => never.promise,
  );
  const guarded = createTargetFetch({
    policy: prod("127.0.0.1/32"),
    resolve: () => Promise.resolve(["127.0.0.1"]),
  });
  const started = Date.now();
  await assert.rejects(
    guarded(`http://hang.test:${server.addr.port}/`, {
      ...post,
      signal: AbortSignal.timeout(200),
    }),
  );
  assert.ok(Date.now() - started < 2000);
  never.resolve(new Response("late"));
});
