/** One attempt of a delivery: admit it, claim it (or use the lease held), send it. */
import { admit, holdDelivery } from "./admission.ts";
import { sendAndRecord } from "./attempt_outcome.ts";
import { commitWrites } from "./group_commit.ts";
import * as keys from "./keys.ts";
import { readPayload, transition } from "./store.ts";
import { type DeliveryRecord, dueAt } from "./types.ts";
import type { AttemptSlots, HeldDelivery, WorkerDeps } from "./worker.ts";
import { WriteSet } from "./write_set.ts";

/** What a lease adds to the attempt timeout, for the outcome's commit. */
export const LEASE_MARGIN_MS = 2000;

/**
 * Attempts one delivery as read, if due: admission, then a claim that fails if the
 * record changed since, then the POST and its outcome.
 *
 * @param deps The worker's deps.
 * @param entry The delivery as read.
 * @param free Frees the attempt's slots once they are no longer needed.
 * @param body Reads the delivery's payload (by default, alone).
 * @returns The id of a delivery its end made due, if any.
 */
export async function attemptDue(
  deps: WorkerDeps,
  entry: Deno.KvEntry<DeliveryRecord>,
  free: AttemptSlots,
  body: (id: string) => Promise<string> = (id) => readPayload(deps.kv, id),
): Promise<string | undefined> {
  const record = entry.value;
  const id = record.id;
  const now = deps.now();
  const due = dueAt(record);
  if (due === null || due > now) return;
  const admission = await admit(deps, record, now);
  if (admission.hold) {
    return await holdDelivery(deps, entry, admission.hold);
  }
  const leased: DeliveryRecord = {
    ...record,
    lease_until: now + deps.config.timeoutMs + LEASE_MARGIN_MS,
  };
  const claim = transition(new WriteSet().check(entry), record, leased, {
    queue: deps.queue,
    now,
  });
  if (admission.probe) {
    // Only one attempt probes a target whose circuit is half open.
    claim.check(admission.probe).set(admission.probe.key, {
      ...admission.probe.value,
      circuit_open_until: leased.lease_until,
    });
  }
  // The payload never changes: read it while the claim commits.
  const [claimed, payload] = await Promise.all([
    commitWrites(deps, claim),
    body(id),
  ]);
  if (!claimed.ok) return;
  return await sendAndRecord(deps, {
    record: leased,
    payload,
    versionstamp: claimed.versionstamp,
  }, {
    free: admission.probe ? { ...free, target: _keep } : free,
    targetHealthy: admission.healthy === true,
  });
}

/** A probe's success clears the circuit: the slot is kept until that is recorded. */
const _keep = () => {};

/**
 * Attempts a delivery created already leased by this process (the fast path), unless
 * the lease no longer covers a full attempt (then the sweeper takes it when it ends).
 *
 * @param deps The worker's deps.
 * @param held The leased record, its payload and the lease's versionstamp.
 * @param free Frees the attempt's slots once they are no longer needed.
 * @returns The id of a delivery its end made due, if any.
 */
export async function attemptLeased(
  deps: WorkerDeps,
  held: HeldDelivery,
  free: AttemptSlots,
): Promise<string | undefined> {
  const id = held.record.id;
  if (deps.now() + deps.config.timeoutMs >= held.record.lease_until!) {
    return; // Too late for a full attempt: the sweeper takes it when the lease ends.
  }
  const entry = {
    key: keys.deliveryKey(id),
    value: held.record,
    versionstamp: held.versionstamp,
  };
  const admission = await admit(deps, held.record, deps.now());
  if (admission.hold) return await holdDelivery(deps, entry, admission.hold);
  if (admission.probe) {
    const probe = deps.kv.atomic().check(entry).check(admission.probe).set(
      admission.probe.key,
      { ...admission.probe.value, circuit_open_until: held.record.lease_until },
    );
    if (!(await probe.commit()).ok) return;
  }
  return await sendAndRecord(deps, held, {
    free: admission.probe ? { ...free, target: _keep } : free,
    targetHealthy: admission.healthy === true,
  });
}
