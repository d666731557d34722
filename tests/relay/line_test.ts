import assert from "node:assert/strict";
import { createLine } from "../../relay/line.ts";

/** A line whose attempts end when the test says so. */
function _line(concurrency: number, perTarget: number) {
  const started: string[] = [];
  const ends = new Map<string, () => void>();
  const line = createLine({
    concurrency,
    perTarget,
    start: (id) => {
      started.push(id);
      const { promise, resolve } = Promise.withResolvers<void>();
      ends.set(id, resolve);
      return promise;
    },
  });
  const end = async (...ids: string[]) => {
    for (const id of ids) ends.get(id)!();
    await new Promise((r) => setTimeout(r, 0));
  };
  return { line, started, end };
}

const items = (target: string, n: number) =>
  Array.from(
    { length: n },
    (_, i) => ({ id: `${target}${i}`, target_id: target }),
  );

Deno.test("createLine() starts each target's ids in turn, never more of one target than its share", async () => {
  const { line, started, end } = _line(4, 1);
  line.add([...items("slow", 5), ...items("fast", 3)]);
  assert.deepEqual(started, ["slow0", "fast0"]);
  assert.ok(line.has("slow1") && line.has("fast1") && !line.has("fast0"));
  // The fast target's ids go on while the slow one's first attempt still runs.
  await end("fast0");
  await end("fast1");
  await end("fast2");
  assert.deepEqual(started, ["slow0", "fast0", "fast1", "fast2"]);
  await end("slow0");
  assert.deepEqual(started.slice(4), ["slow1"]);
  assert.ok(!line.has("slow1") && line.has("slow2"));
});

Deno.test("createLine() refills a group at a time and keeps within its concurrency", async () => {
  const { line, started, end } = _line(8, 8);
  line.add(items("t", 20));
  assert.equal(started.length, 8);
  // One ended: fewer than a quarter of the room is free, so nothing starts yet.
  await end("t0");
  assert.equal(started.length, 8);
  await end("t1");
  assert.deepEqual(started.slice(8), ["t8", "t9"]);
});

Deno.test("createLine() ignores an id already waiting, and clear() drops what waits", async () => {
  const { line, started, end } = _line(1, 1);
  line.add(items("t", 3));
  line.add([{ id: "t2", target_id: "t" }]);
  assert.deepEqual(started, ["t0"]);
  line.clear();
  assert.ok(!line.has("t1") && !line.has("t2"));
  await end("t0");
  assert.deepEqual(started, ["t0"]);
  line.add(items("t", 2));
  assert.deepEqual(started, ["t0", "t0"]);
});
