/**
 * CPU time from `/proc` (Linux): a whole process, and the part spent in Deno KV's
 * SQLite threads (named `sw-N`), so a phase can say what each delivery cost.
 */

/** CPU used so far, in milliseconds; NaN off Linux. */
export interface CpuTime {
  total_ms: number;
  /** Deno KV's SQLite threads. */
  kv_ms: number;
}

// utime and stime, in clock ticks of 10 ms (USER_HZ is 100 on Linux).
async function _ms(statPath: string): Promise<number> {
  const stat = await Deno.readTextFile(statPath);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * Reads a process's CPU time.
 *
 * @param pid The process, or `"self"`.
 * @returns Its CPU time, NaN where `/proc` is missing.
 */
export async function cpuTime(pid: number | "self"): Promise<CpuTime> {
  try {
    let kv = 0;
    for await (const t of Deno.readDir(`/proc/${pid}/task`)) {
      const dir = `/proc/${pid}/task/${t.name}`;
      const name = (await Deno.readTextFile(`${dir}/comm`)).trim();
      if (/^sw-\d+$/.test(name)) kv += await _ms(`${dir}/stat`);
    }
    return { total_ms: await _ms(`/proc/${pid}/stat`), kv_ms: kv };
  } catch {
    return { total_ms: NaN, kv_ms: NaN };
  }
}

/**
 * CPU per delivery between two readings.
 *
 * @param before The first reading.
 * @param after The second.
 * @param n Deliveries made in between.
 * @returns Milliseconds per delivery, rounded to microseconds.
 */
export function perDelivery(
  before: CpuTime,
  after: CpuTime,
  n: number,
): CpuTime {
  const r = (ms: number) => Math.round(ms / n * 1000) / 1000;
  return {
    total_ms: r(after.total_ms - before.total_ms),
    kv_ms: r(after.kv_ms - before.kv_ms),
  };
}
