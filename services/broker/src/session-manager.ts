import type { ClientHttp2Stream, Http2Session } from "node:http2";
import { Http2SessionManager } from "@connectrpc/connect-node";

/** HTTP/2 flow-control window per stream and per connection, for large batches in flight. */
const WINDOW = 16 << 20;

/**
 * Opens sessions with wide flow-control windows: with the default 64 KiB, a stream of large
 * batches stalls on a WINDOW_UPDATE round trip every 64 KiB.
 */
export class WideWindowSessionManager extends Http2SessionManager {
  private readonly widened = new WeakSet<Http2Session>();

  constructor(baseUrl: string) {
    super(baseUrl, undefined, { settings: { initialWindowSize: WINDOW } });
  }

  override async request(
    ...args: Parameters<Http2SessionManager["request"]>
  ): Promise<ClientHttp2Stream> {
    const stream = await super.request(...args);
    const session = stream.session;
    if (session && !this.widened.has(session)) {
      this.widened.add(session);
      session.setLocalWindowSize(WINDOW);
    }
    return stream;
  }
}
