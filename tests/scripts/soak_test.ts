import assert from "node:assert/strict";
import { runSoak } from "../../scripts/soak.ts";

Deno.test("runSoak() loses nothing across 2 SIGKILLs and restarts (short soak)", async () => {
  const result = await runSoak({
    deliveries: 300,
    kills: 2,
    seed: 20261204,
    deadlineMs: 60_000,
  });
  assert.equal(result.kills, 2);
  assert.equal(result.expected, 300);
  assert.equal(result.lost, 0, JSON.stringify(result));
  assert.equal(result.delivered, 300);
  assert.equal(result.unverified, 0);
  assert.ok(result.requests >= 300);
});
