import assert from "node:assert/strict";
import { findPgBin } from "../../db/cluster.ts";

/** Makes `<root>/<dir>` holding empty `pg_ctl` and `initdb` files. */
async function fakeBin(root: string, dir: string): Promise<string> {
  const bin = `${root}/${dir}`;
  await Deno.mkdir(bin, { recursive: true });
  for (const name of ["pg_ctl", "initdb"]) {
    await Deno.writeTextFile(`${bin}/${name}`, "");
  }
  return await Deno.realPath(bin);
}

Deno.test("findPgBin() prefers PG_BIN, then the highest /usr/lib/postgresql version, then PATH", async () => {
  const root = await Deno.makeTempDir({ prefix: "pgbin-" });
  try {
    const lib = `${root}/lib`;
    const v9 = await fakeBin(lib, "9.6/bin");
    const v16 = await fakeBin(lib, "16/bin");
    await fakeBin(lib, "15/bin");
    await Deno.mkdir(`${lib}/17/bin`, { recursive: true }); // no binaries
    const own = await fakeBin(root, "own");
    assert.equal(findPgBin({ env: { PG_BIN: own }, libDir: lib }), own);
    assert.equal(
      findPgBin({ env: { PG_BIN: `${root}/nope` }, libDir: lib }),
      v16,
    );
    await Deno.remove(`${lib}/16`, { recursive: true });
    await Deno.remove(`${lib}/15`, { recursive: true });
    assert.equal(
      findPgBin({ env: {}, libDir: lib }),
      v9,
      "9.6 is a version too",
    );

    // On PATH through a symlink, as /usr/local/bin/pg_ctl often is: the real
    // directory is returned, where initdb sits.
    const onPath = `${root}/path`;
    await Deno.mkdir(onPath);
    await Deno.symlink(`${own}/pg_ctl`, `${onPath}/pg_ctl`);
    const empty = `${root}/none`;
    assert.equal(
      findPgBin({ env: { PATH: `${root}/missing:${onPath}` }, libDir: empty }),
      own,
    );
    assert.throws(
      () => findPgBin({ env: { PATH: `${root}/missing` }, libDir: empty }),
      /Cannot start PostgreSQL: set DATABASE_URL, or install PostgreSQL/,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
