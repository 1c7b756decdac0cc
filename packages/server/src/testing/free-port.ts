import { readFileSync } from "node:fs";
import { createServer } from "node:net";

/**
 * A loopback port that was free a moment ago, for a process that must be told its port before
 * it starts (cluster members that name each other, a member restarted on its old address).
 * Prefer `--port 0` where a process can announce the port it got.
 *
 * It is taken below the kernel's ephemeral range: a port from that range (what `listen(0)`
 * gives) can be handed to any outgoing connection on the machine while the process that
 * should own it is not yet, or no longer, listening; a SIGKILLed member restarted on its
 * port then fails with EADDRINUSE. Each process walks its own sequence (offset by its pid),
 * so parallel test processes rarely probe the same port; a taken one is skipped.
 */
export async function freePort(): Promise<number> {
  for (let tries = 0; tries < span; tries++) {
    const port = lowest + (next++ % span);
    if (await portFree(port)) return port;
  }
  throw new Error(`no free port between ${lowest} and ${lowest + span - 1}`);
}

const lowest = 10_000;
const span = Math.max(1_000, ephemeralStart() - lowest);
let next = (process.pid * 7_919) % span;

/** The first port of the kernel's ephemeral range (Linux's default where it cannot be read). */
function ephemeralStart(): number {
  try {
    const first = Number(
      readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").split(/\s+/)[0],
    );
    return Number.isInteger(first) && first > lowest ? first : 32_768;
  } catch {
    return 32_768;
  }
}

/** Whether a loopback listener can take `port` now. */
export function portFree(port: number): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}
