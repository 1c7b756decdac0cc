import http2 from "node:http2";
import { Pool } from "undici";

/** Keep-alive HTTP/1.1 connections the gateway opens to one backend, at most. */
const maxHttp1Connections = 128;

/**
 * The connections to one backend: one HTTP/2 (h2c) session, opened on first use and again
 * after it closes, for streams and gRPC, and a keep-alive HTTP/1.1 pool (undici) for unary
 * Connect and gRPC-Web calls. `session()` rejects when the connection cannot be opened:
 * nothing of the call was sent.
 */
export class Upstream {
  readonly address: string;
  #session: http2.ClientHttp2Session | undefined;
  #connecting: Promise<http2.ClientHttp2Session> | undefined;
  #http1: Pool | undefined;
  /** False once the backend answered HTTP/1.1 with something else (an h2c-only server). */
  speaksHttp1 = true;

  constructor(address: string) {
    this.address = address;
  }

  /** The open connection, if there is one: the hot path takes it without a promise. */
  current(): http2.ClientHttp2Session | undefined {
    const s = this.#session;
    return s && !s.closed && !s.destroyed ? s : undefined;
  }

  session(): Promise<http2.ClientHttp2Session> {
    const s = this.current();
    if (s) return Promise.resolve(s);
    this.#connecting ??= new Promise((resolve, reject) => {
      const session = http2.connect(this.address);
      const forget = () => {
        if (this.#session === session) this.#session = undefined;
      };
      // A session error after connecting ends its streams with errors; nothing to rethrow.
      session.on("error", () => forget());
      session.once("close", forget);
      session.once("goaway", forget);
      let connected = false;
      session.once("connect", () => {
        connected = true;
        this.#connecting = undefined;
        this.#session = session;
        resolve(session);
      });
      session.once("error", (e) => {
        if (!connected) {
          this.#connecting = undefined;
          reject(e);
        }
      });
    });
    return this.#connecting;
  }

  /**
   * The HTTP/1.1 pool. The gateway enforces deadlines itself, so undici's own header and
   * body timeouts are off; idle connections close after a few seconds.
   */
  http1(): Pool {
    this.#http1 ??= new Pool(this.address, {
      connections: maxHttp1Connections,
      pipelining: 1,
      headersTimeout: 0,
      bodyTimeout: 0,
    });
    return this.#http1;
  }

  close(): void {
    this.#session?.close();
    this.#session = undefined;
    // Calls still running finish first.
    void this.#http1?.close();
    this.#http1 = undefined;
  }
}
