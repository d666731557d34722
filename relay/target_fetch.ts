/**
 * The fetch the worker uses in production: it resolves a target's host name itself,
 * refuses it when any address is loopback, private, link-local, CGNAT, metadata or
 * reserved (unless allow-listed), and then connects to the very address it checked,
 * so a DNS answer that changes between check and connect (rebinding) cannot redirect
 * the request. TLS still verifies the certificate against the host name.
 */
import http from "node:http";
import https from "node:https";
import type { LookupFunction } from "node:net";
import { Readable } from "node:stream";
import { allowsIp, isBlockedIp, parseIp } from "./ip_ranges.ts";
import type { TargetPolicy } from "./target_url.ts";

/**
 * Resolves a host name to its IPv4 and IPv6 addresses. `signal` is the attempt's
 * timeout; a resolver should stop when it aborts (the guarded fetch stops waiting
 * for it either way).
 */
export type Resolver = (
  host: string,
  signal?: AbortSignal,
) => Promise<string[]>;

/** Thrown when a target may not be called; the delivery ends without retrying. */
export class TargetBlockedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TargetBlockedError";
  }
}

/**
 * Resolves with `Deno.resolveDns` (A and AAAA; honours the hosts file).
 *
 * @param host A host name.
 * @param signal Aborts both lookups.
 * @returns Every address found.
 * @throws {Error} When the name has no address.
 */
export async function systemResolve(
  host: string,
  signal?: AbortSignal,
): Promise<string[]> {
  const answers = await Promise.allSettled([
    Deno.resolveDns(host, "A", { signal }),
    Deno.resolveDns(host, "AAAA", { signal }),
  ]);
  signal?.throwIfAborted();
  const found = answers.flatMap((a) => a.status === "fulfilled" ? a.value : []);
  if (found.length === 0) {
    const reason = answers[0].status === "rejected" ? answers[0].reason : "";
    throw new Error(`Cannot resolve ${host}: ${reason}`);
  }
  return found;
}

/**
 * Creates the guarded fetch for a target policy.
 *
 * @param opts The policy, a resolver (default {@link systemResolve}) and extra CA
 *   certificates (PEM) trusted for HTTPS targets.
 * @returns A fetch for `POST`s to webhook targets; plain `fetch` when private
 *   targets are allowed.
 * @example
 * ```ts
 * const guarded = createTargetFetch({ policy: { allowPrivate: false } });
 * await guarded("https://buyer.example/hook", { method: "POST", body: "{}" });
 * ```
 */
export function createTargetFetch(
  opts: { policy: TargetPolicy; resolve?: Resolver; caCerts?: string[] },
): typeof fetch {
  if (opts.policy.allowPrivate) return fetch;
  const resolve = opts.resolve ?? systemResolve;
  const allowed = (ip: bigint) =>
    !isBlockedIp(ip) ||
    (opts.policy.allowlist !== undefined &&
      allowsIp(opts.policy.allowlist, ip));
  return async (input, init = {}) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const host = url.hostname.replace(/^\[|\]$/g, "").toLowerCase();
    if (opts.policy.allowlist?.hosts.has(host)) return fetch(url, init);
    const literal = parseIp(host);
    if (literal !== undefined) {
      if (!allowed(literal)) {
        throw new TargetBlockedError(
          `${host} is a loopback, private or reserved address`,
        );
      }
      return fetch(url, init);
    }
    const signal = init.signal ?? undefined;
    const addresses = await _untilAborted(resolve(host, signal), signal);
    const bad = addresses.find((a) => {
      const ip = parseIp(a);
      return ip === undefined || !allowed(ip);
    });
    if (bad !== undefined) {
      throw new TargetBlockedError(
        `${host} resolves to ${bad}, a loopback, private or reserved address`,
      );
    }
    return _pinned(url, addresses[0]!, init, opts.caCerts);
  };
}

/** `work`, or the signal's reason as soon as it aborts (whichever comes first). */
function _untilAborted<T>(work: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return work;
  if (signal.aborted) return Promise.reject(signal.reason);
  const aborted = Promise.withResolvers<never>();
  const onAbort = () => aborted.reject(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  return Promise.race([work, aborted.promise]).finally(() =>
    signal.removeEventListener("abort", onAbort)
  );
}

function _fixedLookup(address: string, family: number): LookupFunction {
  const lookup = (
    _host: string,
    options: { all?: boolean },
    done: (err: null, found: unknown, family?: number) => void,
  ) =>
    options.all
      ? done(null, [{ address, family }])
      : done(null, address, family);
  return lookup as unknown as LookupFunction;
}

/** POSTs to `url` over a connection to `address`, whatever DNS says meanwhile. */
function _pinned(
  url: URL,
  address: string,
  init: RequestInit,
  ca: string[] | undefined,
): Promise<Response> {
  const family = address.includes(":") ? 6 : 4;
  const client = url.protocol === "https:" ? https : http;
  const { promise, resolve, reject } = Promise.withResolvers<Response>();
  const req = client.request({
    host: url.hostname,
    port: url.port || undefined,
    path: `${url.pathname}${url.search}`,
    method: init.method ?? "GET",
    headers: Object.fromEntries(new Headers(init.headers)),
    signal: init.signal ?? undefined,
    ca,
    lookup: _fixedLookup(address, family),
  }, (res) => {
    // Thrown here, an error would escape to the process: answer through `reject`.
    try {
      resolve(_toResponse(res));
    } catch (err) {
      res.destroy();
      req.destroy();
      reject(err);
    }
  });
  req.on("error", reject);
  req.end(typeof init.body === "string" ? init.body : undefined);
  return promise;
}

/**
 * The node response as a fetch `Response`.
 *
 * @throws {Error} On a final status outside 200–599 (`new Response` accepts no
 *   other), so the attempt fails and is retried like any bad answer.
 */
function _toResponse(res: http.IncomingMessage): Response {
  const status = res.statusCode ?? 0;
  if (status < 200 || status > 599) {
    throw new Error(`invalid HTTP status ${status}`);
  }
  const headers = new Headers();
  for (const [name, value] of Object.entries(res.headers)) {
    for (const v of [value ?? []].flat()) headers.append(name, v);
  }
  const empty = [204, 205, 304].includes(status);
  if (empty) res.resume();
  return new Response(
    empty ? null : Readable.toWeb(res) as ReadableStream<Uint8Array>,
    { status, headers },
  );
}
