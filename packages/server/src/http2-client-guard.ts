import { subscribe } from "node:diagnostics_channel";
import type { ClientHttp2Stream, Http2Session } from "node:http2";
import type { Logger } from "./logger.ts";

let guarding = false;

/**
 * connect-node's session manager destroys an HTTP/2 connection that receives GOAWAY with no
 * stream open, with an error Node emits once the socket has closed. If a new call has made the
 * manager move to a new connection by then, it no longer listens on the old one, and the error
 * crashes the process (connectrpc/connect-es#1768, not fixed in 2.3.0): a member restarting
 * could take down the peers that called it. From the first call, every client connection in
 * the process (connect-node's and any other) gets a listener that logs such an error instead;
 * connections whose owners still listen are left to them.
 */
export function guardHttp2ClientSessions(logger: Logger): void {
  if (guarding) return;
  guarding = true;
  const guarded = new WeakSet<Http2Session>();
  subscribe("http2.client.stream.created", (message) => {
    const session = (message as { stream: ClientHttp2Stream }).stream.session;
    if (session === undefined || guarded.has(session)) return;
    guarded.add(session);
    session.on("error", (err) => {
      if (session.listenerCount("error") === 1)
        logger.debug({ err }, "an HTTP/2 client connection failed after its owner let go of it");
    });
  });
}
