import http2 from "node:http2";

/**
 * One HTTP/2 (h2c) connection to a backend, opened on first use and again after it closes.
 * `session()` rejects when the connection cannot be opened: nothing of the call was sent.
 */
export class Upstream {
  readonly address: string;
  #session: http2.ClientHttp2Session | undefined;
  #connecting: Promise<http2.ClientHttp2Session> | undefined;

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

  close(): void {
    this.#session?.close();
    this.#session = undefined;
  }
}
