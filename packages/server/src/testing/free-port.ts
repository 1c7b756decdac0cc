import { createServer } from "node:net";

/**
 * A loopback port that was free a moment ago, for a process that must be told its port before
 * it starts (cluster members that name each other). Prefer `--port 0` where a process can
 * announce the port it got.
 */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
