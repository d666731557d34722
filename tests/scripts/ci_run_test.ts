import assert from "node:assert/strict";

const script = new URL("../../.ci/run", import.meta.url).pathname;

const firstFile = (paths: string[]) =>
  paths.find((p) => {
    try {
      return Deno.statSync(p).isFile;
    } catch {
      return false;
    }
  });

Deno.test(".ci/run ends with a summary line even when it stops early (no npx)", async () => {
  // A PATH with the few tools the script needs before its npx check, and no npx.
  const bin = await Deno.makeTempDir({ prefix: "ci-path-" });
  try {
    for (const tool of ["dirname", "id"]) {
      const found = firstFile([`/usr/bin/${tool}`, `/bin/${tool}`]);
      await Deno.symlink(found!, `${bin}/${tool}`);
    }
    const bash = firstFile(["/usr/bin/bash", "/bin/bash"]);
    const out = await new Deno.Command(bash!, {
      args: [script],
      env: { PATH: bin },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
    assert.equal(out.code, 1);
    assert.deepEqual(lines, [
      "npx (Node.js) is required",
      "0 passed, 1 failed",
    ]);
  } finally {
    await Deno.remove(bin, { recursive: true });
  }
});
