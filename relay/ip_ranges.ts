/**
 * IP address arithmetic for target checks: parses IPv4 and IPv6 addresses and CIDR
 * ranges, knows which ranges the relay must never call in production, and matches
 * the operator's allow-list.
 */

/** An address or range, both families as one 128-bit space (IPv4 as ::ffff:a.b.c.d). */
interface Range {
  net: bigint;
  bits: number;
}

const V4_MAPPED = 0xffffn << 32n;

function _v4(text: string): bigint | undefined {
  const parts = text.split(".");
  if (
    parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || +p > 255)
  ) {
    return undefined;
  }
  return parts.reduce((n, p) => n * 256n + BigInt(p), 0n);
}

function _v6(text: string): bigint | undefined {
  let h = text.toLowerCase();
  const v4Tail = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(h);
  if (v4Tail) {
    const v4 = _v4(v4Tail[2]!);
    if (v4 === undefined) return undefined;
    h = `${v4Tail[1]}${(v4 >> 16n).toString(16)}:${
      (v4 & 0xffffn).toString(16)
    }`;
  }
  const halves = h.split("::");
  if (halves.length > 2) return undefined;
  const groups = halves.map((s) => (s === "" ? [] : s.split(":")));
  const missing = 8 - groups.reduce((n, g) => n + g.length, 0);
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const all = halves.length === 1
    ? groups[0]!
    : [...groups[0]!, ...Array(missing).fill("0"), ...groups[1]!];
  if (all.some((g) => !/^[0-9a-f]{1,4}$/.test(g))) return undefined;
  return all.reduce((n, g) => (n << 16n) + BigInt(`0x${g}`), 0n);
}

/**
 * Parses an IP address into the shared 128-bit space.
 *
 * @param text An IPv4 or IPv6 address, brackets allowed.
 * @returns The address, IPv4 mapped into `::ffff:0:0/96`; `undefined` if not an IP.
 */
export function parseIp(text: string): bigint | undefined {
  const t = text.replace(/^\[|\]$/g, "");
  const v4 = _v4(t);
  if (v4 !== undefined) return V4_MAPPED | v4;
  return t.includes(":") ? _v6(t) : undefined;
}

/**
 * Parses a CIDR range (`10.0.0.0/8`, `fd00::/8`) or a single address.
 *
 * @param text The range.
 * @returns The range, or `undefined` when malformed.
 */
export function parseCidr(text: string): Range | undefined {
  const [addr, len, extra] = text.trim().split("/");
  if (extra !== undefined || !addr) return undefined;
  const net = parseIp(addr);
  if (net === undefined) return undefined;
  const isV4 = _v4(addr) !== undefined;
  const max = isV4 ? 32 : 128;
  if (len !== undefined && !/^\d{1,3}$/.test(len)) return undefined;
  const bits = len === undefined ? max : Number(len);
  if (bits > max) return undefined;
  return { net, bits: isV4 ? bits + 96 : bits };
}

function _inRange(ip: bigint, r: Range): boolean {
  const shift = BigInt(128 - r.bits);
  return ip >> shift === r.net >> shift;
}

const BLOCKED: Range[] = [
  // IPv4: "this network", private, CGNAT, loopback, link-local (cloud metadata),
  // IETF protocol assignments, documentation, 6to4 relay, benchmarking,
  // multicast, reserved and broadcast.
  "0.0.0.0/8",
  "10.0.0.0/8",
  "100.64.0.0/10",
  "127.0.0.0/8",
  "169.254.0.0/16",
  "172.16.0.0/12",
  "192.0.0.0/24",
  "192.0.2.0/24",
  "192.88.99.0/24",
  "192.168.0.0/16",
  "198.18.0.0/15",
  "198.51.100.0/24",
  "203.0.113.0/24",
  "224.0.0.0/4",
  "240.0.0.0/4",
  // IPv6: unspecified, loopback and IPv4-compatible (::/96), NAT64, discard,
  // IETF assignments (Teredo among them), documentation, 6to4, unique local
  // (fd00:ec2::254 is AWS metadata), link-local, site-local, multicast.
  "::/96",
  "64:ff9b::/96",
  "64:ff9b:1::/48",
  "100::/64",
  "2001::/23",
  "2001:db8::/32",
  "2002::/16",
  "fc00::/7",
  "fe80::/10",
  "fec0::/10",
  "ff00::/8",
].map((c) => parseCidr(c)!);

/**
 * Says whether an address is loopback, private, link-local, CGNAT, metadata or
 * otherwise reserved, for IPv4, IPv6 and IPv4-mapped IPv6.
 *
 * @param ip An address from {@link parseIp}.
 * @returns `true` when production must not call it.
 */
export function isBlockedIp(ip: bigint): boolean {
  return BLOCKED.some((r) => _inRange(ip, r));
}

/** The operator's exceptions: ranges and exact host names that may be called. */
export interface Allowlist {
  ranges: Range[];
  hosts: Set<string>;
}

/**
 * Parses `RELAY_TARGET_ALLOWLIST`: comma-separated CIDR ranges, addresses and host
 * names.
 *
 * @param raw The variable's value.
 * @returns The allow-list, and each entry that is neither a range nor a host name.
 */
export function parseAllowlist(
  raw: string,
): { allowlist: Allowlist; bad: string[] } {
  const allowlist: Allowlist = { ranges: [], hosts: new Set() };
  const bad: string[] = [];
  for (const entry of raw.split(",").map((s) => s.trim()).filter(Boolean)) {
    const range = parseCidr(entry);
    if (range) allowlist.ranges.push(range);
    else if (/^[a-z0-9]([a-z0-9.-]*[a-z0-9.])?$/i.test(entry)) {
      allowlist.hosts.add(entry.toLowerCase());
    } else bad.push(entry);
  }
  return { allowlist, bad };
}

/**
 * Says whether an address falls in one of the allow-list's ranges.
 *
 * @param allowlist The operator's allow-list.
 * @param ip An address from {@link parseIp}.
 * @returns `true` when allowed despite being blocked.
 */
export function allowsIp(allowlist: Allowlist, ip: bigint): boolean {
  return allowlist.ranges.some((r) => _inRange(ip, r));
}
