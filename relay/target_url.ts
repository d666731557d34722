/**
 * Which webhook URLs the relay will call. In production, loopback, private,
 * link-local, CGNAT, metadata and other reserved addresses are refused unless the
 * operator allow-lists them. This checks the URL as written; `target_fetch.ts`
 * checks the addresses a name resolves to when it is called.
 */
import { type Allowlist, allowsIp, isBlockedIp, parseIp } from "./ip_ranges.ts";

/** Where private targets may be called from. */
export interface TargetPolicy {
  /** Lets every address through (dev, tests). */
  allowPrivate: boolean;
  /** Ranges and host names allowed even though they are private. */
  allowlist?: Allowlist;
}

/**
 * Says what is wrong with a webhook URL, if anything.
 *
 * @param raw The URL as given.
 * @param opts The policy: `allowPrivate` lets loopback and private addresses through.
 * @returns A reason, or `undefined` when the URL may be called.
 */
export function targetUrlProblem(
  raw: string,
  opts: TargetPolicy,
): string | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return "not a valid URL";
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return `scheme must be http or https, got ${url.protocol.slice(0, -1)}`;
  }
  if (url.username || url.password) return "must not contain credentials";
  if (opts.allowPrivate) return undefined;
  const host = url.hostname.replace(/^\[|\]$/g, "").toLowerCase();
  if (opts.allowlist?.hosts.has(host)) return undefined;
  const ip = parseIp(host);
  const named = host.replace(/\.$/, "");
  if (
    (ip !== undefined && isBlockedIp(ip) &&
      !(opts.allowlist && allowsIp(opts.allowlist, ip))) ||
    named === "localhost" || named.endsWith(".localhost")
  ) {
    return `host ${url.hostname} is a loopback, private or reserved address`;
  }
  return undefined;
}
