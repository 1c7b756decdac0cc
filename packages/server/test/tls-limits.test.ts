import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { afterEach, beforeAll, expect, it } from "vitest";
import type { Limits, Server } from "../src/index.ts";
import { serveForTest } from "./fixtures.ts";
import { readUntilClosed, tcp } from "./processes.ts";

// Over TLS the same server object speaks h2 and HTTP/1.1, so the limits are wired apart from
// the cleartext sniffing path; these check that they hold there too.
let cert: Buffer;
let key: Buffer;
beforeAll(() => {
  const dir = mkdtempSync(join(tmpdir(), "quartet-tls-limits-"));
  execFileSync(
    "openssl",
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
      .concat(["-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-days", "1"])
      .concat(["-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"]),
    { stdio: "ignore" },
  );
  cert = readFileSync(join(dir, "cert.pem"));
  key = readFileSync(join(dir, "key.pem"));
});

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

const start = async (limits: Partial<Limits>) => {
  const server = await serveForTest({ tls: { cert, key }, limits });
  servers.push(server);
  return server;
};

it("over TLS, closes a connection that never handshakes and an h2 session with no stream", async () => {
  const server = await start({ idleTimeoutMs: 300 });
  const silent = readUntilClosed(await tcp(server.port));
  const session = http2.connect(server.url, { ca: cert });
  session.on("error", () => {});
  await new Promise((resolve) => session.once("connect", resolve));
  await new Promise((resolve) => session.once("close", resolve));
  expect(await silent).toBe("");
});

it("over TLS, refuses connections past the per-peer limit", async () => {
  const server = await start({ maxConnectionsPerPeer: 2 });
  const held = [await tcp(server.port), await tcp(server.port)];
  // Both places are taken: a third connection is closed before its handshake completes.
  const third = tls.connect({ port: server.port, host: "127.0.0.1", ca: cert });
  const error = await new Promise<Error>((resolve) => third.once("error", resolve));
  expect(error.message).toMatch(/socket disconnected|ECONNRESET/);
  for (const socket of held) socket.destroy();
});
