import assert from "node:assert/strict";
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
