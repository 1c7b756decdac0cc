import type net from "node:net";
import type { Limits } from "./limits.ts";

/**
 * Counts open connections, in all and per peer address, so that one client cannot take every
 * file descriptor and a crowd cannot take more than the process can hold.
 */
export class ConnectionLimit {
  private open = 0;
  private readonly perPeer = new Map<string, number>();

  private readonly limits: Pick<Limits, "maxConnections" | "maxConnectionsPerPeer">;

  constructor(limits: Pick<Limits, "maxConnections" | "maxConnectionsPerPeer">) {
    this.limits = limits;
  }

  /**
   * Takes a place for `socket` until it closes, or returns why there is none (the socket
   * then holds no place and should be refused).
   */
  admit(socket: net.Socket): string | undefined {
    const peer = socket.remoteAddress ?? "unknown";
    const fromPeer = this.perPeer.get(peer) ?? 0;
    if (this.open >= this.limits.maxConnections) {
      return `server is at its limit of ${this.limits.maxConnections} connections (--max-connections); retry later`;
    }
    if (fromPeer >= this.limits.maxConnectionsPerPeer) {
      return `server is at its limit of ${this.limits.maxConnectionsPerPeer} connections from ${peer} (--max-connections-per-peer); reuse a connection`;
    }
    this.open++;
    this.perPeer.set(peer, fromPeer + 1);
    socket.once("close", () => {
      this.open--;
      const left = (this.perPeer.get(peer) ?? 1) - 1;
      if (left === 0) this.perPeer.delete(peer);
      else this.perPeer.set(peer, left);
    });
    return undefined;
  }
}

/** An HTTP/1.1 503 that says why, then the connection closes. */
export function http1Refusal(message: string): string {
  const body = `${message}\n`;
  return [
    "HTTP/1.1 503 Service Unavailable",
    "content-type: text/plain; charset=utf-8",
    `content-length: ${Buffer.byteLength(body)}`,
    "connection: close",
    "",
    body,
  ].join("\r\n");
}

const frameHeader = (length: number, type: number) => {
  const header = Buffer.alloc(9);
  header.writeUIntBE(length, 0, 3);
  header.writeUInt8(type, 3);
  return header; // flags 0, stream 0
};
const settingsFrame = 0x4;
const goawayFrame = 0x7;
const enhanceYourCalm = 0xb;

/**
 * The server's side of an HTTP/2 connection that is refused before it starts: the empty
 * SETTINGS every server connection opens with, then GOAWAY ENHANCE_YOUR_CALM with `message`
 * as debug data. Written directly, so a refused connection costs no HTTP/2 session.
 */
export function http2Refusal(message: string): Buffer {
  const debug = Buffer.from(message);
  const goaway = Buffer.alloc(8);
  goaway.writeUInt32BE(0, 0); // last stream id: none was processed
  goaway.writeUInt32BE(enhanceYourCalm, 4);
  return Buffer.concat([
    frameHeader(0, settingsFrame),
    frameHeader(goaway.length + debug.length, goawayFrame),
    goaway,
    debug,
  ]);
}
