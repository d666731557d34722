import assert from "node:assert/strict";
import { parseAllowlist } from "../../relay/ip_ranges.ts";
import { createTargetFetch } from "../../relay/target_fetch.ts";
import {
  mediaBuy,
  openTestKv,
  startTestRelay,
  stepUpdate,
  waitFor,
} from "../_helpers.ts";

const prod = (allow = "") => ({
  allowPrivate: false,
  allowlist: parseAllowlist(allow).allowlist,
});
const post = { method: "POST", body: "{}" };

/** A TCP server on 127.0.0.1 that answers every request with `statusLine`. */
function rawServer(statusLine: string) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let requests = 0;
  const conns = new Set<Deno.Conn>();
  const served = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      (async () => {
        try {
          await conn.read(new Uint8Array(64 * 1024));
          requests++;
          await conn.write(new TextEncoder().encode(
            `${statusLine}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok`,
          ));
        } catch { /* the client hung up */ }
        conns.delete(conn);
        try {
          conn.close();
        } catch { /* already closed */ }
      })();
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    requests: () => requests,
    async [Symbol.asyncDispose]() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
      await served;
    },
  };
}

Deno.test("createTargetFetch() rejects a pinned answer with a status outside 200-599 instead of crashing", async () => {
  const guarded = createTargetFetch({
    policy: prod("127.0.0.1/32"),
    resolve: () => Promise.resolve(["127.0.0.1"]),
  });
  // A final 101 used to pass as a 200; 600 and 999 made `new Response` throw.
  const lines = ["HTTP/1.1 999 Weird", "HTTP/1.1 600 Odd", "HTTP/1.1 101 Up"];
  for (const line of lines) {
    await using server = rawServer(line);
    await assert.rejects(
      guarded(`http://weird.test:${server.port}/hook`, post),
      (err: Error) =>
        err.message === `invalid HTTP status ${line.split(" ")[1]}`,
      line,
    );
    assert.equal(server.requests(), 1);
  }
});

Deno.test("createTargetFetch() on a literal address passes a 999 through as a status (classified as a retryable failure)", async () => {
  await using server = rawServer("HTTP/1.1 999 Weird");
  const guarded = createTargetFetch({ policy: prod("127.0.0.1/32") });
  const res = await guarded(`http://127.0.0.1:${server.port}/hook`, post);
  assert.equal(res.status, 999);
  await res.body?.cancel();
});

Deno.test("production relay: a receiver answering 999 is a failed attempt, retried, by name and by literal address", async () => {
  await using server = rawServer("HTTP/1.1 999 Weird");
  await using store = await openTestKv();
  await using relay = startTestRelay(store.kv, {
    env: {
      RELAY_ALLOW_PRIVATE_TARGETS: "0",
      RELAY_TARGET_ALLOWLIST: "127.0.0.0/8",
    },
    resolve: () => Promise.resolve(["127.0.0.1"]),
  });
  const targets = [
    {
      url: `http://weird.test:${server.port}/hook`,
      error: /invalid HTTP status 999/,
    },
    { url: `http://127.0.0.1:${server.port}/hook`, code: 999 },
  ];
  for (const [i, target] of targets.entries()) {
    const step = `step_${i}`;
    await relay.post(
      "/v1/events",
      mediaBuy(target.url, { media_buy_id: `mb_${i}`, step_id: step }),
    );
    const answer = await (await relay.post(
      "/v1/events",
      stepUpdate({ step_id: step }),
    )).json();
    const id = answer.deliveries[0].id;
    // RELAY_RETRY_SCHEDULE has 3 retries: all 4 attempts fail, then it is dead.
    const d = await waitFor(async () => {
      const d = await (await relay.get(`/v1/deliveries/${id}`)).json();
      return d.status === "dead" && d;
    });
    assert.equal(d.attempts.length, 4, target.url);
    for (const a of d.attempts) {
      if (target.error) {
        assert.equal(a.status_code, null);
        assert.match(a.error, target.error);
      } else assert.equal(a.status_code, target.code);
    }
  }
  assert.equal(server.requests(), 8);
});

Deno.test("createTargetFetch() gives up on a hanging resolver when the attempt times out", async () => {
  const seen: (AbortSignal | undefined)[] = [];
  const guarded = createTargetFetch({
    policy: prod(),
    resolve: (_host, signal) => {
      seen.push(signal);
      return new Promise(() => {}); // never answers, ignores the signal
    },
  });
  const started = Date.now();
  await assert.rejects(
    guarded("http://slow-dns.test/hook", {
      ...post,
      signal: AbortSignal.timeout(100),
    }),
    (err: Error) => err.name === "TimeoutError",
  );
  assert.ok(Date.now() - started < 2000);
  assert.equal(seen.length, 1);
  assert.equal(seen[0]?.aborted, true, "the resolver got the attempt's signal");
});

Deno.test("production relay: a hanging resolver ends the attempt at its timeout", async () => {
  await using store = await openTestKv();
  await using relay = startTestRelay(store.kv, {
    env: { RELAY_ALLOW_PRIVATE_TARGETS: "0", RELAY_TIMEOUT_MS: "100" },
    resolve: () => new Promise(() => {}),
  });
  await relay.post("/v1/events", mediaBuy("http://slow-dns.test/hook"));
  const answer = await (await relay.post("/v1/events", stepUpdate())).json();
  const id = answer.deliveries[0].id;
  const d = await waitFor(async () => {
    const d = await (await relay.get(`/v1/deliveries/${id}`)).json();
    return d.attempts.length >= 1 && d;
  });
  assert.match(d.attempts[0].error, /timeout after 100 ms/);
});
