/**
 * The line of a recovered backlog: ids queued per target and started in turn, at
 * most `perTarget` of a target's and `concurrency` in all at a time, so a slow
 * target holds its own share and never the line. Only ids are held. Attempts are
 * started a group at a time, so their reads can share KV calls.
 */

/** A delivery waiting in the line. */
export interface LineItem {
  id: string;
  target_id: string;
}

/** The line's handle. */
export interface Line {
  /** Queues items not already waiting, and starts what there is room for. */
  add(items: readonly LineItem[]): void;
  /** Whether `id` waits (queued, not yet started). */
  has(id: string): boolean;
  /** Drops everything still waiting; started attempts go on. */
  clear(): void;
}

/**
 * Creates a line.
 *
 * @param opts Limits, and `start`, which attempts one id (once it has left the
 *   line: `has(id)` is false by then) and settles when the attempt ends.
 * @returns The line.
 */
export function createLine(opts: {
  concurrency: number;
  perTarget: number;
  start: (id: string) => Promise<void>;
}): Line {
  const queues = new Map<
    string,
    { ids: string[]; at: number; running: number }
  >();
  const waiting = new Set<string>();
  let running = 0;

  function pump() {
    const room = Math.min(opts.concurrency, queues.size * opts.perTarget);
    if (room - running < Math.max(1, Math.min(10, Math.floor(room / 4)))) {
      return;
    }
    for (let started = true; started && running < room;) {
      started = false;
      for (const [target, q] of queues) {
        if (running >= room) break;
        if (q.running >= opts.perTarget || q.at >= q.ids.length) continue;
        const id = q.ids[q.at++]!;
        if (q.at >= 1024 && q.at * 2 >= q.ids.length) {
          q.ids = q.ids.slice(q.at);
          q.at = 0;
        }
        waiting.delete(id);
        q.running++;
        running++;
        started = true;
        opts.start(id).finally(() => {
          q.running--;
          running--;
          if (q.running === 0 && q.at >= q.ids.length) queues.delete(target);
          pump();
        });
      }
    }
  }

  return {
    add(items) {
      for (const { id, target_id } of items) {
        if (waiting.has(id)) continue;
        waiting.add(id);
        let q = queues.get(target_id);
        if (!q) queues.set(target_id, q = { ids: [], at: 0, running: 0 });
        q.ids.push(id);
      }
      pump();
    },
    has: (id) => waiting.has(id),
    clear() {
      for (const [target, q] of queues) {
        if (q.running === 0) queues.delete(target);
        else [q.ids, q.at] = [[], 0];
      }
      waiting.clear();
    },
  };
}
