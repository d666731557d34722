import assert from "node:assert/strict";
import { watchLogLines } from "../../scripts/relay_process.ts";

const stream = (...chunks: string[]) =>
  ReadableStream.from(chunks.map((c) => new TextEncoder().encode(c)));

Deno.test("watchLogLines() skips lines that are not JSON and still finds the listening line", async () => {
  const lines: string[] = [];
  const url = await watchLogLines(
    stream(
      "Download https://example/x\n[1, 2\n",
      '42\n{"msg":"relay listening","url":"http://127.0.0.1:1234"}\n',
    ),
    lines,
  );
  assert.equal(url, "http://127.0.0.1:1234");
  assert.deepEqual(lines.slice(0, 3), [
    "Download https://example/x",
    "[1, 2",
    "42",
  ]);
});

Deno.test("watchLogLines() rejects with the output when the relay never listens", async () => {
  await assert.rejects(
    watchLogLines(stream("not json\n", '{"msg":"bye"}\n'), []),
    /relay exited before listening:\nnot json\n\{"msg":"bye"\}/,
  );
});
