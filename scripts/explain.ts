/**
 * `deno task explain <object_type> <object_id> [--json]`: why a webhook for an object
 * was or was not sent, read from the agent's Postgres (`DATABASE_URL`) and the relay's
 * KV (`RELAY_KV_PATH`, default `.relay/relay.sqlite3`). `--json` prints the document
 * `GET /v1/explain/{object_type}/{object_id}` returns.
 */
import { ConfigError, loadConfig } from "../config.ts";
import { createSql } from "../db/client.ts";
import { createStepSource } from "../db/source.ts";
import { explainObject } from "../relay/explain.ts";
import { renderExplanation } from "../relay/explain_text.ts";

const json = Deno.args.includes("--json");
const [objectType, objectId] = Deno.args.filter((a) => a !== "--json");
if (!objectType || !objectId) {
  // deno-lint-ignore no-console
  console.error("usage: deno task explain <object_type> <object_id> [--json]");
  Deno.exit(2);
}
let config;
try {
  config = loadConfig(Deno.env.toObject(), "dev");
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  // deno-lint-ignore no-console
  console.error(err.message);
  Deno.exit(78);
}
if (!config.databaseUrl) {
  // deno-lint-ignore no-console
  console.error("explain reads the sales agent's tables: set DATABASE_URL");
  Deno.exit(78);
}
const sql = createSql(config.databaseUrl, {
  applicationName: "webhook-relay-explain",
  max: 1,
});
const kv = await Deno.openKv(config.kvPath);
try {
  const doc = await explainObject(
    {
      kv,
      source: createStepSource(sql),
      nullIsActive: config.nullIsActive,
      allowPrivate: config.allowPrivateTargets,
      allowlist: config.targetAllowlist,
    },
    objectType,
    objectId,
  );
  const out = json
    ? JSON.stringify(doc, null, 2) + "\n"
    : renderExplanation(doc);
  await Deno.stdout.write(new TextEncoder().encode(out));
} finally {
  kv.close();
  await sql.end({ timeout: 5 });
}
