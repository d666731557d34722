import assert from "node:assert/strict";

const LOG = new URL("../../relay/log.ts", import.meta.url).href;

async function run(end: string) {
  const code = `import { createLogger } from "${LOG}";
const log = createLogger();
for (let i = 0; i < 1500; i++) log.info("line", { i });
${end}`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    stdout: "piped",
    stderr: "null",
  }).output();
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  return { code: out.code, seen: lines.map((l) => JSON.parse(l).i) };
}

Deno.test("createLogger() writes every line to stdout, in order, however the process ends", async () => {
  const all = [...Array(1500).keys()];
  for (
    const [end, code] of [
      ["", 0],
      ["Deno.exit(3);", 3],
      ['throw new Error("boom");', 1],
      ['Promise.reject(new Error("boom"));', 1],
    ] as const
  ) {
    const got = await run(end);
    assert.equal(got.code, code, end);
    assert.deepEqual(got.seen, all, end || "normal exit");
  }
});
