import assert from "node:assert/strict";
import {
  ConfigError,
  DEFAULT_RETRY_SCHEDULE_S,
  loadConfig,
  MAX_DELAY_S,
} from "../config.ts";
import { SECRET } from "./_helpers.ts";

function problems(
  env: Record<string, string>,
  mode: "dev" | "start",
): string[] {
  try {
    loadConfig(env, mode);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

Deno.test("loadConfig() gives dev its local defaults", () => {
  const c = loadConfig({}, "dev");
  assert.equal(c.host, "127.0.0.1");
  assert.equal(c.port, 8000);
  assert.equal(c.kvPath, ".relay/relay.sqlite3");
  assert.equal(c.allowPrivateTargets, true);
  assert.deepEqual(
    c.retryScheduleMs,
    DEFAULT_RETRY_SCHEDULE_S.map((s) => s * 1000),
  );
  assert.equal(c.timeoutMs, 10_000);
  assert.ok(Object.isFrozen(c));
});

Deno.test("loadConfig() in start mode names each missing secret", () => {
  assert.deepEqual(problems({}, "start"), [
    'RELAY_API_TOKEN: required when running with "start"',
    'RELAY_SIGNING_SECRET: required when running with "start"',
  ]);
  const c = loadConfig({
    RELAY_API_TOKEN: "t".repeat(20),
    RELAY_SIGNING_SECRET: SECRET,
  }, "start");
  assert.equal(c.host, "0.0.0.0");
  assert.equal(c.allowPrivateTargets, false);
  assert.equal(c.queue, "kv");
});

Deno.test("loadConfig() reports every bad value by variable, without echoing secrets", () => {
  const found = problems({
    PORT: "eighty",
    RELAY_TIMEOUT_MS: "-5",
    RELAY_RETRY_SCHEDULE: "5,x",
    RELAY_SIGNING_SECRET: `${SECRET},whsec_c2hvcnQ=,plain`,
    RELAY_ALLOW_PRIVATE_TARGETS: "maybe",
  }, "dev");
  const names = found.map((p) => p.split(":")[0]);
  assert.deepEqual(names.sort(), [
    "PORT",
    "RELAY_ALLOW_PRIVATE_TARGETS",
    "RELAY_RETRY_SCHEDULE",
    "RELAY_SIGNING_SECRET",
    "RELAY_SIGNING_SECRET",
    "RELAY_TIMEOUT_MS",
  ]);
  assert.ok(
    found.some((p) => p.includes("#2: expected 24 to 64 bytes of key, got 5")),
  );
  assert.ok(
    !found.join("\n").includes("c2hvcnQ"),
    "secret values are not echoed",
  );
});

Deno.test("loadConfig() parses rotation lists and fractional schedules", () => {
  const other = "whsec_" + btoa("x".repeat(32));
  const c = loadConfig({
    RELAY_SIGNING_SECRET: `${SECRET}, ${other}`,
    RELAY_RETRY_SCHEDULE: "0.5, 2",
  }, "dev");
  assert.deepEqual(c.signingSecrets, [SECRET, other]);
  assert.deepEqual(c.retryScheduleMs, [500, 2000]);
  const once = loadConfig({ RELAY_RETRY_SCHEDULE: "none" }, "dev");
  assert.deepEqual(once.retryScheduleMs, []);
});

async function runMain(mode: string, env: Record<string, string>) {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", mode],
    env: { ...env, NO_COLOR: "1" },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code,
    out: new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr),
  };
}

Deno.test("main.ts start refuses to start without its secrets, naming them", async () => {
  const { code, out } = await runMain("start", {
    PATH: Deno.env.get("PATH") ?? "",
  });
  assert.equal(code, 78);
  assert.match(out, /RELAY_API_TOKEN: required/);
  assert.match(out, /RELAY_SIGNING_SECRET: required/);
});

Deno.test("main.ts dev refuses a bad value, naming the variable", async () => {
  const { code, out } = await runMain("dev", { RELAY_TIMEOUT_MS: "soon" });
  assert.equal(code, 78);
  assert.match(out, /RELAY_TIMEOUT_MS: .*got "soon"/);
});

Deno.test("loadConfig() names a signing secret that is not valid base64 instead of crashing", () => {
  assert.throws(
    () => loadConfig({ RELAY_SIGNING_SECRET: "whsec_short" }, "dev"),
    (err: Error) =>
      err instanceof ConfigError &&
      /RELAY_SIGNING_SECRET: #1: expected whsec_ followed by base64/.test(
        err.message,
      ) && !err.message.includes("whsec_short"),
  );
});

Deno.test("loadConfig() validates the target health and allow-list variables", () => {
  const ok = loadConfig({
    RELAY_TARGET_ALLOWLIST: "10.0.0.0/8, hooks.internal",
    RELAY_DISABLE_AFTER_S: "60",
  }, "dev");
  assert.equal(ok.targetAllowlist.ranges.length, 1);
  assert.ok(ok.targetAllowlist.hosts.has("hooks.internal"));
  assert.equal(ok.disableAfterMs, 60_000);
  assert.equal(loadConfig({}, "dev").disableAfterMs, 5 * 24 * 3600 * 1000);
  assert.throws(
    () =>
      loadConfig({
        RELAY_TARGET_ALLOWLIST: "10.0.0.0/99",
        RELAY_TARGET_CONCURRENCY: "0",
        RELAY_CIRCUIT_FAILURES: "many",
        RELAY_CIRCUIT_COOLDOWN_S: "-1",
      }, "dev"),
    (err: Error) =>
      [
        "RELAY_TARGET_ALLOWLIST",
        "RELAY_TARGET_CONCURRENCY",
        "RELAY_CIRCUIT_FAILURES",
        "RELAY_CIRCUIT_COOLDOWN_S",
      ]
        .every((name) => err.message.includes(`${name}:`)),
  );
});

Deno.test("loadConfig() reads the sales agent sync settings and names bad ones", () => {
  const c = loadConfig({}, "dev");
  assert.equal(c.databaseUrl, undefined);
  assert.equal(c.pgMode, "poll");
  assert.equal(c.pgPollMs, 1000);
  assert.equal(c.nullIsActive, false);
  const set = loadConfig({
    DATABASE_URL: "postgres://agent:pw@db/salesagent",
    RELAY_PG_MODE: "notify",
    RELAY_NULL_IS_ACTIVE: "1",
  }, "dev");
  assert.equal(set.pgMode, "notify");
  assert.equal(set.nullIsActive, true);
  const bad = problems({
    DATABASE_URL: "mysql://agent:pw@db/x",
    RELAY_PG_MODE: "push",
  }, "dev");
  assert.equal(bad.length, 2);
  assert.match(bad[0]!, /^DATABASE_URL: expected a postgres:\/\/ URL$/);
  assert.match(bad[1]!, /^RELAY_PG_MODE: /);
});

Deno.test("loadConfig() refuses waits over 30 days (Deno KV's longest queue delay), by name", () => {
  const days30 = String(MAX_DELAY_S);
  const ok = loadConfig({
    RELAY_RETRY_SCHEDULE: `5,${days30}`,
    RELAY_RETRY_AFTER_MAX_S: days30,
    RELAY_CIRCUIT_COOLDOWN_S: days30,
  }, "dev");
  assert.equal(ok.retryScheduleMs[1], MAX_DELAY_S * 1000);
  assert.equal(ok.retryAfterMaxMs, MAX_DELAY_S * 1000);
  assert.equal(ok.circuitCooldownMs, MAX_DELAY_S * 1000);
  const tooLong = String(MAX_DELAY_S + 1);
  const found = problems({
    RELAY_RETRY_SCHEDULE: `5,${tooLong}`,
    RELAY_RETRY_AFTER_MAX_S: tooLong,
    RELAY_CIRCUIT_COOLDOWN_S: tooLong,
  }, "dev");
  assert.deepEqual(found, [
    `RELAY_RETRY_SCHEDULE: each entry expected at most 2592000 seconds (30 days) (got "5,${tooLong}")`,
    `RELAY_RETRY_AFTER_MAX_S: expected at most 2592000 seconds (30 days) (got "${tooLong}")`,
    `RELAY_CIRCUIT_COOLDOWN_S: expected at most 2592000 seconds (30 days) (got "${tooLong}")`,
  ]);
});
