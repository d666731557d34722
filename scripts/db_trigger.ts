/**
 * `deno task db:install` / `deno task db:uninstall`: adds or removes the NOTIFY
 * trigger on the agent's `workflow_steps` (notify mode). Explicit, never automatic.
 */
import { createSql } from "../db/client.ts";
import { installTrigger, uninstallTrigger } from "../db/notify.ts";

const action = Deno.args[0];
const url = Deno.env.get("DATABASE_URL");
if ((action !== "install" && action !== "uninstall") || !url) {
  // deno-lint-ignore no-console
  console.error(
    "usage: DATABASE_URL=postgres://… deno task db:install | db:uninstall",
  );
  Deno.exit(2);
}
const sql = createSql(url, {
  applicationName: "webhook-relay-install",
  max: 1,
});
try {
  await (action === "install" ? installTrigger(sql) : uninstallTrigger(sql));
  // deno-lint-ignore no-console
  console.log(
    action === "install"
      ? "installed trigger relay_notify_workflow_step on workflow_steps (channel relay_workflow_steps); run the relay with RELAY_PG_MODE=notify"
      : "removed trigger relay_notify_workflow_step and its function",
  );
} finally {
  await sql.end({ timeout: 5 });
}
