/**
 * Which webhook URLs the relay will call. In production, loopback, private,
 * link-local, CGNAT, metadata and other reserved addresses are refused.
 */

const V4_BLOCKED: [number, number][] = [
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16],
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.0.2.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["198.51.100.0", 24],
  ["203.0.113.0", 24],
  ["224.0.0.0", 4],
  ["240.0.0.0", 4],
].map(([ip, bits]) => [_v4(ip as string)!, bits as number]);

function _v4(host: string): number | undefined {
  const parts = host.split(".");
  if (
    parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || +p > 255)
  ) {
    return undefined;
  }
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

function _v4Blocked(n: number): boolean {
  return V4_BLOCKED.some(([net, bits]) =>
    Math.floor(n / 2 ** (32 - bits)) === Math.floor(net / 2 ** (32 - bits))
  );
}

function _v6Blocked(host: string): boolean {
  const h = host.toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
  if (mapped) return _v4Blocked(_v4(mapped[1]!) ?? 0);
  if (/^::ffff:[0-9a-f]{1,4}:[0-9a-f]{1,4}$/.test(h)) return true;
  if (h === "::" || h === "::1") return true;
  return /^(f[cd]|fe[89ab]|ff|64:ff9b:|2001:db8:|100::)/.test(h);
}

/**
 * Says what is wrong with a webhook URL, if anything.
 *
 * @param raw The URL as given.
 * @param opts `allowPrivate` lets loopback and private addresses through (dev, tests).
 * @returns A reason, or `undefined` when the URL may be called.
 */
export function targetUrlProblem(
  raw: string,
  opts: { allowPrivate: boolean },
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
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const v4 = _v4(host);
  if (
    (v4 !== undefined && _v4Blocked(v4)) ||
    (host.includes(":") && _v6Blocked(host)) ||
    host === "localhost" || host.endsWith(".localhost")
  ) {
    return `host ${url.hostname} is a loopback, private or reserved address`;
  }
  return undefined;
}
