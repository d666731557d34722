/**
 * The bench's passthrough: a server that answers each event with 202 and then signs
 * and POSTs its payload to the receiver, storing nothing. It is the relay's two HTTP
 * hops and its signing without durability: the ceiling of any relay on this machine.
 *
 * Usage: `deno run -A scripts/bench/passthrough_server.ts <port> <receiver url> <secret>`
 */
import { attemptHeaders, createSigner } from "../../relay/sign.ts";
import { benchPayload } from "./baselines.ts";

const [port, target, secret] = Deno.args;
const signer = createSigner([secret!]);
let sent = 0;

async function forward(key: string) {
  const id = `msg_passthrough_${sent++}`;
  const body = benchPayload(key, id);
  const timestampS = Math.floor(Date.now() / 1000);
  const res = await fetch(target!, {
    method: "POST",
    headers: attemptHeaders(signer, { id, timestampS, body }),
    body,
  });
  await res.body?.cancel();
}

Deno.serve(
  { hostname: "127.0.0.1", port: Number(port), onListen() {} },
  async (req) => {
    if (req.method !== "POST") return new Response("ok");
    const event = await req.json() as { step_id: string };
    forward(event.step_id).catch(() => {});
    return Response.json({ accepted: event.step_id }, { status: 202 });
  },
);
