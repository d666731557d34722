/**
 * The receiver fault matrix, against real loopback receivers. Cases already covered
 * in delivery_test.ts (500 then 200, 503 with Retry-After seconds, a receiver that
 * never answers, 410, other 4xx) are not repeated here.
 */
import assert from "node:assert/strict";
import {
  mediaBuy,
  openTestKv,
  startReceiver,
  startTestRelay,
  stepUpdate,
  waitFor,
} from "../_helpers.ts";

type Relay = ReturnType<typeof startTestRelay>;

async function delivery(relay: Relay, id: string) {
  const res = await relay.get(`/v1/deliveries/${id}`);
  assert.equal(res.status, 200);
  return await res.json();
}

async function send(relay: Relay, url: string, step = "step_1") {
  await relay.post(
    "/v1/events",
    mediaBuy(url, { step_id: step, media_buy_id: `mb_${step}` }),
  );
  const answer =
    await (await relay.post("/v1/events", stepUpdate({ step_id: step })))
      .json();
  assert.equal(answer.deliveries.length, 1, JSON.stringify(answer));
  return answer.deliveries[0].id as string;
}

/** Waits until the delivery has `n` attempts and is no longer in flight. */
async function settledAfter(relay: Relay, id: string, n: number) {
  return await waitFor(async () => {
    const d = await delivery(relay, id);
    return d.attempts.length >= n && !d.in_flight && d;
  }, { what: `${n} attempts of ${id}` });
}

/** A port nothing listens on. */
function closedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = l.addr as Deno.NetAddr;
  l.close();
  return port;
}

/** A raw TCP receiver that reads the request and answers `reply` bytes, then closes. */
function rawReceiver(reply: string) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let connections = 0;
  (async () => {
    for await (const conn of listener) {
      connections++;
      const buf = new Uint8Array(64 * 1024);
      await conn.read(buf).catch(() => null);
      await conn.write(new TextEncoder().encode(reply)).catch(() => 0);
      conn.close();
    }
  })();
  const { port } = listener.addr as Deno.NetAddr;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    connections: () => connections,
    [Symbol.dispose]: () => listener.close(),
  };
}

const retried = (d: Record<string, unknown>, updated: string) => {
  assert.equal(d.status, "failed");
  assert.ok(
    Date.parse(d.next_attempt_at as string) > Date.parse(updated),
    "a next attempt is scheduled after the failure",
  );
};

Deno.test("fault matrix: 503 with an HTTP-date Retry-After waits until that date", async () => {
  await using store = await openTestKv();
  const retryAt = new Date(Math.ceil(Date.now() / 1000) * 1000 + 3000);
  await using receiver = startReceiver((hit) =>
    hit.n === 1
      ? new Response("busy", {
        status: 503,
        headers: { "retry-after": retryAt.toUTCString() },
      })
      : new Response("ok")
  );
  await using relay = startTestRelay(store.kv);
  const id = await send(relay, receiver.url);
  const d = await settledAfter(relay, id, 1);
  retried(d, d.updated_at);
  assert.equal(d.attempts[0].status_code, 503);
  assert.equal(d.attempts[0].response_body, "busy");
  assert.equal(d.last_error, "HTTP 503");
  const next = Date.parse(d.next_attempt_at);
  assert.ok(
    next >= retryAt.getTime() - 1000 && next <= retryAt.getTime() + 50,
    `next attempt ${d.next_attempt_at}, receiver asked for ${retryAt.toISOString()}`,
  );
});

for (const status of [429, 408]) {
  Deno.test(`fault matrix: ${status} is retried on the schedule, then succeeds`, async () => {
    await using store = await openTestKv();
    await using receiver = startReceiver((hit) =>
      new Response(hit.n === 1 ? "slow down" : "ok", {
        status: hit.n === 1 ? status : 200,
      })
    );
    await using relay = startTestRelay(store.kv, {
      env: { RELAY_RETRY_SCHEDULE: "0.4" },
    });
    const id = await send(relay, receiver.url);
    const failed = await settledAfter(relay, id, 1);
    assert.equal(failed.status, "failed");
    assert.equal(failed.last_error, `HTTP ${status}`);
    const wait = Date.parse(failed.next_attempt_at) -
      Date.parse(failed.updated_at);
    assert.ok(wait >= 320 && wait <= 480, `waits ${wait} ms (400 ± 20%)`);
    const done = await settledAfter(relay, id, 2);
    assert.equal(done.status, "succeeded");
    assert.equal(done.next_attempt_at, null);
    assert.deepEqual(
      done.attempts.map((a: { status_code: number }) => a.status_code),
      [status, 200],
    );
  });
}

Deno.test("fault matrix: a 3xx is not followed and counts as a failure", async () => {
  await using store = await openTestKv();
  await using elsewhere = startReceiver();
  await using receiver = startReceiver(() =>
    new Response(null, { status: 302, headers: { location: elsewhere.url } })
  );
  await using relay = startTestRelay(store.kv, {
    env: { RELAY_RETRY_SCHEDULE: "5" },
  });
  const id = await send(relay, receiver.url);
  const d = await settledAfter(relay, id, 1);
  retried(d, d.updated_at);
  assert.equal(d.attempts[0].status_code, 302);
  assert.equal(d.last_error, "HTTP 302");
  assert.equal(elsewhere.hits.length, 0, "the redirect was not followed");
});

Deno.test("fault matrix: connection refused is a network error, retried", async () => {
  await using store = await openTestKv();
  await using relay = startTestRelay(store.kv, {
    env: { RELAY_RETRY_SCHEDULE: "5" },
  });
  const id = await send(relay, `http://127.0.0.1:${closedPort()}/hook`);
  const d = await settledAfter(relay, id, 1);
  retried(d, d.updated_at);
  assert.equal(d.attempts[0].status_code, null);
  assert.match(d.attempts[0].error, /^network error: .*(refused|connect)/i);
  assert.equal(d.last_status_code, null);
});

Deno.test("fault matrix: a connection closed before or inside the headers is retried", async () => {
  for (const reply of ["", "HTTP/1.1 200 OK\r\nContent-Le"]) {
    await using store = await openTestKv();
    using raw = rawReceiver(reply);
    await using relay = startTestRelay(store.kv, {
      env: { RELAY_RETRY_SCHEDULE: "5" },
    });
    const id = await send(relay, raw.url);
    const d = await settledAfter(relay, id, 1);
    retried(d, d.updated_at);
    assert.equal(raw.connections(), 1);
    assert.equal(d.attempts[0].status_code, null);
    assert.match(
      d.attempts[0].error,
      /^network error: /,
      JSON.stringify(reply),
    );
  }
});

Deno.test("fault matrix: a reset inside the body keeps the status the receiver sent", async () => {
  await using store = await openTestKv();
  using ok = rawReceiver(
    "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\naccepted, then cut",
  );
  using bad = rawReceiver(
    "HTTP/1.1 500 Oops\r\nContent-Length: 100\r\n\r\nfailed, then cut",
  );
  await using relay = startTestRelay(store.kv, {
    env: { RELAY_RETRY_SCHEDULE: "5" },
  });
  // The status line is the receiver's answer; the truncated body is kept as it came.
  const a = await settledAfter(relay, await send(relay, ok.url), 1);
  assert.equal(a.status, "succeeded");
  assert.equal(a.attempts[0].status_code, 200);
  assert.equal(a.attempts[0].response_body, "accepted, then cut");
  const b = await settledAfter(relay, await send(relay, bad.url, "step_2"), 1);
  retried(b, b.updated_at);
  assert.equal(b.attempts[0].status_code, 500);
  assert.equal(b.attempts[0].response_body, "failed, then cut");
});

Deno.test("fault matrix: a slow trickling body is cut at the timeout", async () => {
  await using store = await openTestKv();
  const timers: ReturnType<typeof setInterval>[] = [];
  await using receiver = startReceiver(() =>
    new Response(
      new ReadableStream({
        start(controller) {
          timers.push(setInterval(() => {
            try {
              controller.enqueue(new TextEncoder().encode("."));
            } catch {
              // The relay hung up.
            }
          }, 50));
        },
      }),
    )
  );
  await using relay = startTestRelay(store.kv, {
    env: { RELAY_TIMEOUT_MS: "400" },
  });
  const id = await send(relay, receiver.url);
  const d = await settledAfter(relay, id, 1);
  timers.forEach(clearInterval);
  assert.equal(d.status, "succeeded", "the 200 came before the body stalled");
  const a = d.attempts[0];
  assert.equal(a.status_code, 200);
  assert.ok(
    a.duration_ms >= 350 && a.duration_ms < 1500,
    `${a.duration_ms} ms`,
  );
  assert.match(a.response_body, /^\.{2,10}$/);
});

Deno.test("fault matrix: a 200 with a huge body is read only up to 2 KB", async () => {
  await using store = await openTestKv();
  const big = "x".repeat(8 * 1024 * 1024);
  await using receiver = startReceiver(() => new Response(big));
  await using relay = startTestRelay(store.kv);
  const d = await settledAfter(relay, await send(relay, receiver.url), 1);
  assert.equal(d.status, "succeeded");
  assert.equal(d.next_attempt_at, null);
  assert.equal(d.attempts[0].response_body.length, 2048);
  assert.equal(d.attempts.length, 1);
});
