import assert from "node:assert/strict";

for (const mode of ["poll", "notify"]) {
  Deno.test(`deno task flow (${mode} mode): the report's eight steps pass against a real Postgres`, async () => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "scripts/test-real-webhook-flow.ts"],
      env: { FLOW_RECEIVER_PORT: "0", NO_COLOR: "1", RELAY_PG_MODE: mode },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, text + new TextDecoder().decode(out.stderr));
    const steps = text.split("\n").filter((l) => /^[✅❌] \d\./.test(l));
    assert.equal(steps.length, 8);
    assert.ok(steps.every((l) => l.startsWith("✅")), text);
    assert.match(text, /explain: sent/);
  });
}
