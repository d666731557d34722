/** One HTTP attempt: the POST, its timeout, and the response body kept for the log. */
import type { AttemptResult } from "./plan.ts";
import { parseRetryAfter } from "./retry_policy.ts";
import { TargetBlockedError } from "./target_fetch.ts";
import type { DeliveryRecord } from "./types.ts";

/** How much of a response body is kept in the attempt log. */
const RESPONSE_BODY_CAP = 2048;

/** What {@link postAttempt} needs. */
export interface PostDeps {
  fetch: typeof fetch;
  now: () => number;
  config: { timeoutMs: number };
}

/**
 * POSTs one signed attempt (redirects not followed, bounded by the timeout) and
 * reads at most {@link RESPONSE_BODY_CAP} bytes of the answer.
 *
 * @param deps fetch, clock and the attempt timeout.
 * @param record The delivery (its URL).
 * @param req The exact body and the signed headers.
 * @returns The attempt's result for `settle()` and the response body kept.
 */
export async function postAttempt(
  deps: PostDeps,
  record: DeliveryRecord,
  req: { body: string; headers: Record<string, string> },
): Promise<{ result: AttemptResult; responseBody: string }> {
  const signal = AbortSignal.timeout(deps.config.timeoutMs);
  let res: Response;
  try {
    res = await deps.fetch(record.url, {
      method: "POST",
      headers: req.headers,
      body: req.body,
      redirect: "manual",
      signal,
    });
  } catch (err) {
    if (err instanceof TargetBlockedError) {
      return {
        result: { status_code: null, error: err.message, blocked: true },
        responseBody: "",
      };
    }
    const error = signal.aborted
      ? `timeout after ${deps.config.timeoutMs} ms`
      : `network error: ${_describe(err)}`;
    return { result: { status_code: null, error }, responseBody: "" };
  }
  const responseBody = await _readCapped(res);
  return {
    result: {
      status_code: res.status,
      error: null,
      retry_after_ms: parseRetryAfter(
        res.headers.get("retry-after"),
        deps.now(),
      ),
    },
    responseBody,
  };
}

async function _readCapped(res: Response): Promise<string> {
  if (!res.body) return "";
  const reader = res.body.getReader();
  const bytes = new Uint8Array(RESPONSE_BODY_CAP);
  let size = 0;
  try {
    while (size < RESPONSE_BODY_CAP) {
      const { done, value } = await reader.read();
      if (done) break;
      const take = value.subarray(0, RESPONSE_BODY_CAP - size);
      bytes.set(take, size);
      size += take.length;
    }
  } catch {
    // The body stopped early (timeout or reset); keep what arrived.
  } finally {
    reader.cancel().catch(() => {});
  }
  return new TextDecoder().decode(bytes.subarray(0, size));
}

function _describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : "";
  return `${err.message}${cause}`;
}
