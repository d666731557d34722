import assert from "node:assert/strict";
import { agentIds, completeBySql, seedAgent, startTestPg } from "../_pg.ts";

async function explainCli(env: Record<string, string>, ...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "scripts/explain.ts", ...args],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

Deno.test("deno task explain prints the chain as text, or the API's document with --json", async () => {
  await using pg = await startTestPg();
  await using db = await pg.newDb();
  const dir = await Deno.makeTempDir({ prefix: "relay-explain-" });
  try {
    const rows = {
      ...agentIds("e", "http://127.0.0.1:9/hooks"),
      isActive: null,
    };
    await seedAgent(db.sql, rows);
    await completeBySql(db.sql, rows.step);
    const env = { DATABASE_URL: db.url, RELAY_KV_PATH: `${dir}/kv.sqlite3` };
    const text = await explainCli(env, "media_buy", rows.mediaBuy);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^media_buy mb_e: not sent/);
    assert.match(text.stdout, /❌ config \[config_is_active_null\]/);
    assert.match(text.stdout, /fix: set is_active = true/);
    const json = await explainCli(env, "media_buy", rows.mediaBuy, "--json");
    const doc = JSON.parse(json.stdout);
    assert.equal(doc.verdict, "not_sent");
    assert.ok(
      doc.steps[0].findings.some((f: { cause?: string }) =>
        f.cause === "config_is_active_null"
      ),
    );
    const usage = await explainCli(env);
    assert.equal(usage.code, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
