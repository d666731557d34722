/** Process-local counters and a latency histogram, rendered as Prometheus text. */

const BUCKETS_MS = [
  1,
  2,
  5,
  10,
  25,
  50,
  100,
  250,
  500,
  1000,
  2500,
  5000,
  10000,
];

/** Counters the relay updates as it works. */
export class Metrics {
  #counters = new Map<string, number>();
  #buckets = new Array<number>(BUCKETS_MS.length).fill(0);
  #sum = 0;
  #count = 0;

  /** Adds one to a counter, identified by name and labels. */
  inc(name: string, labels: Record<string, string> = {}): void {
    const key = `${name}${_labels(labels)}`;
    this.#counters.set(key, (this.#counters.get(key) ?? 0) + 1);
  }

  /** Records one attempt's duration. */
  observeAttempt(ms: number): void {
    BUCKETS_MS.forEach((le, i) => {
      if (ms <= le) this.#buckets[i]!++;
    });
    this.#sum += ms;
    this.#count++;
  }

  /**
   * Renders everything in the Prometheus text format.
   *
   * @param queueDepth Deliveries still open, read from KV by the caller.
   * @param memory The process's memory (`Deno.memoryUsage()`), if given.
   * @returns The exposition text.
   */
  render(queueDepth: number, memory?: Deno.MemoryUsage): string {
    const lines = [...this.#counters].map(([k, v]) => `${k} ${v}`).sort();
    lines.push(`relay_queue_depth ${queueDepth}`);
    for (const [kind, bytes] of Object.entries(memory ?? {})) {
      lines.push(`relay_process_memory_bytes{kind="${kind}"} ${bytes}`);
    }
    BUCKETS_MS.forEach((le, i) =>
      lines.push(
        `relay_attempt_duration_ms_bucket{le="${le}"} ${this.#buckets[i]}`,
      )
    );
    lines.push(`relay_attempt_duration_ms_bucket{le="+Inf"} ${this.#count}`);
    lines.push(`relay_attempt_duration_ms_sum ${this.#sum}`);
    lines.push(`relay_attempt_duration_ms_count ${this.#count}`);
    return lines.join("\n") + "\n";
  }
}

function _labels(labels: Record<string, string>): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}
