import { once } from "node:events";
import http from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { createCors, localhostOrigins } from "../src/index.ts";

let server: http.Server | undefined;
afterEach(() => server?.close());

async function request(
  origins: readonly string[],
  headers: Record<string, string>,
  method = "POST",
) {
  const cors = createCors(origins);
  server = http.createServer((req, res) => {
    if (cors(req, res)) return;
    res.end("handled");
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  const res = await fetch(`http://127.0.0.1:${port}/x`, { method, headers });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

describe("CORS", () => {
  it("passes requests without an Origin untouched", async () => {
    const res = await request(localhostOrigins, {});
    expect(res.body).toBe("handled");
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("allows localhost origins on any port by default and exposes the gRPC headers", async () => {
    const res = await request(localhostOrigins, { origin: "http://127.0.0.1:3000" });
    expect(res.body).toBe("handled");
    expect(res.headers.get("access-control-allow-origin")).toBe("http://127.0.0.1:3000");
    expect(res.headers.get("access-control-expose-headers")).toMatch(/Grpc-Status/);
  });

  it("matches configured origins exactly, with * only where given", async () => {
    const origins = ["https://app.example.com", "https://*.preview.example.com"];
    expect((await request(origins, { origin: "https://app.example.com" })).body).toBe("handled");
    expect((await request(origins, { origin: "https://pr-1.preview.example.com" })).body).toBe(
      "handled",
    );
    const refused = await request(origins, { origin: "https://app.example.com.evil.test" });
    expect(refused.status).toBe(403);
    expect(refused.body).toMatch(/not allowed/);
  });

  it("takes only a port for a port wildcard: http://localhost:* refuses localhost:3000.evil.example", async () => {
    for (const origin of [
      "http://localhost:3000.evil.example",
      "http://localhost:3000@evil.example",
      "http://localhost:",
      "http://[::1]:80.evil.example",
    ]) {
      const refused = await request(localhostOrigins, { origin });
      expect(refused.status, origin).toBe(403);
      server?.close();
    }
    expect((await request(localhostOrigins, { origin: "http://[::1]:5173" })).body).toBe("handled");
  });

  it("takes one host label for a label wildcard", async () => {
    const origins = ["https://*.preview.example.com"];
    const refused = await request(origins, { origin: "https://a.evil.test/.preview.example.com" });
    expect(refused.status).toBe(403);
  });
});
