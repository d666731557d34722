import assert from "node:assert/strict";
import {
  isBlockedIp,
  parseAllowlist,
  parseCidr,
  parseIp,
} from "../../relay/ip_ranges.ts";
import { targetUrlProblem } from "../../relay/target_url.ts";

const prod = { allowPrivate: false };

Deno.test("targetUrlProblem() blocks loopback, private, link-local, CGNAT and reserved literals", () => {
  const blocked = [
    "http://127.0.0.1/",
    "http://127.8.9.10/",
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest",
    "http://100.64.0.1/",
    "http://0.0.0.0/",
    "http://224.0.0.1/",
    "http://198.18.0.1/",
    "http://[::1]/",
    "http://[fe80::1]/",
    "http://[fd00:ec2::254]/",
    "http://[::ffff:127.0.0.1]/",
    "http://localhost:3001/",
    "http://api.localhost/",
  ];
  for (const url of blocked) {
    assert.match(
      targetUrlProblem(url, prod) ?? "",
      /loopback|private|reserved/,
      url,
    );
  }
});

Deno.test("targetUrlProblem() lets public hosts through, and private ones in dev", () => {
  for (
    const url of [
      "https://buyer.example/hook",
      "http://8.8.8.8/",
      "https://[2606:4700::1111]/",
      "http://172.32.0.1/",
    ]
  ) {
    assert.equal(targetUrlProblem(url, prod), undefined, url);
  }
  assert.equal(
    targetUrlProblem("http://127.0.0.1:3001/x", { allowPrivate: true }),
    undefined,
  );
});

Deno.test("targetUrlProblem() refuses other schemes, credentials and garbage even in dev", () => {
  const dev = { allowPrivate: true };
  assert.match(targetUrlProblem("ftp://x/", dev)!, /scheme/);
  assert.match(targetUrlProblem("https://u:p@x/", dev)!, /credentials/);
  assert.match(targetUrlProblem("::::", dev)!, /not a valid URL/);
});

Deno.test("isBlockedIp() covers every reserved IPv4 and IPv6 range, and no public address", () => {
  const blocked = [
    "0.1.2.3",
    "10.255.255.255",
    "100.127.0.1",
    "127.0.0.1",
    "169.254.169.254",
    "172.31.255.255",
    "192.0.0.8",
    "192.0.2.10",
    "192.88.99.1",
    "192.168.0.1",
    "198.19.255.1",
    "198.51.100.7",
    "203.0.113.9",
    "224.0.0.251",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "::",
    "::1",
    "::7f00:1",
    "::ffff:10.0.0.1",
    "::ffff:a9fe:a9fe",
    "64:ff9b::a00:1",
    "64:ff9b:1::1",
    "100::1",
    "2001:0::1",
    "2001:db8::1",
    "2002:7f00:1::",
    "fc00::1",
    "fd00:ec2::254",
    "fe80::1",
    "febf::1",
    "fec0::1",
    "ff02::1",
  ];
  for (const ip of blocked) assert.equal(isBlockedIp(parseIp(ip)!), true, ip);
  const open = [
    "1.1.1.1",
    "8.8.8.8",
    "100.128.0.1",
    "172.32.0.1",
    "192.169.0.1",
    "2606:4700::1111",
    "2a00:1450::1",
    "::ffff:8.8.8.8",
  ];
  for (const ip of open) assert.equal(isBlockedIp(parseIp(ip)!), false, ip);
});

Deno.test("parseIp() and parseCidr() reject malformed input", () => {
  for (
    const bad of [
      "1.2.3",
      "1.2.3.256",
      "::1::2",
      "1:2:3:4:5:6:7:8:9",
      "g::1",
      "host",
    ]
  ) {
    assert.equal(parseIp(bad), undefined, bad);
  }
  for (const bad of ["10.0.0.0/33", "::/129", "10.0.0.0/8/1", "10.0.0.0/x"]) {
    assert.equal(parseCidr(bad), undefined, bad);
  }
  assert.deepEqual(parseIp("[::1]"), 1n);
});

Deno.test("the allow-list lets named ranges and hosts through in production", () => {
  const { allowlist, bad } = parseAllowlist(
    "10.0.0.0/8, fd00::/8, hooks.internal, not a host!",
  );
  assert.deepEqual(bad, ["not a host!"]);
  const policy = { allowPrivate: false, allowlist };
  assert.equal(targetUrlProblem("http://10.1.2.3/x", policy), undefined);
  assert.equal(targetUrlProblem("http://[fd12::1]/x", policy), undefined);
  assert.equal(targetUrlProblem("http://hooks.internal/x", policy), undefined);
  assert.match(targetUrlProblem("http://192.168.1.1/x", policy)!, /private/);
  assert.match(targetUrlProblem("http://localhost./x", policy)!, /loopback/);
});
