/** Renders an {@link Explanation} as readable text for `deno task explain`. */
import type { Explanation } from "./explain.ts";

const _mark = (f: { ok: boolean; cause?: string }) =>
  !f.ok ? "❌" : f.cause ? "ℹ️ " : "✅";

/**
 * Renders the explanation, one line per link, causes and fixes spelled out.
 *
 * @param doc The document `explainObject` returned.
 * @returns Text ending in a newline.
 */
export function renderExplanation(doc: Explanation): string {
  const out = [
    `${doc.object_type} ${doc.object_id}: ${doc.verdict.replace("_", " ")}`,
  ];
  for (const f of doc.findings) {
    out.push(`  ${_mark(f)} ${f.link}: ${f.cause ?? "ok"}: ${f.detail}`);
    if (f.fix) out.push(`       fix: ${f.fix}`);
  }
  for (const s of doc.steps) {
    out.push(
      `  step ${s.step_id} (${s.status}, completed_at ${
        s.completed_at ?? "NULL"
      }${s.trace_ids.length ? `, trace ${s.trace_ids.join(", ")}` : ""})`,
    );
    for (const f of s.findings) {
      out.push(
        `    ${_mark(f)} ${f.link}${
          f.cause ? ` [${f.cause}]` : ""
        }: ${f.detail}`,
      );
      if (!f.ok && f.fix) out.push(`         fix: ${f.fix}`);
      if ("attempts" in f) {
        for (const a of f.attempts) {
          out.push(
            `         attempt ${a.n} at ${new Date(a.at).toISOString()}: ${
              a.status_code ?? a.error
            } (${a.duration_ms} ms)`,
          );
        }
      }
    }
  }
  return out.join("\n") + "\n";
}
