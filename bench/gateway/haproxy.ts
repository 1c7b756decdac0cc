// HAProxy (Debian's 2.6) in front of the bench's workers: one `mode http` frontend per
// protocol, round robin over the same worker processes the Quartet gateway uses.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "@quartet/server/testing";

export interface HAProxy {
  /** HTTP/1.1 frontend; HTTP/1.1 keep-alive connections to the workers. */
  h1Url: string;
  /** h2c frontend (`proto h2`, prior knowledge); h2c connections to the workers. */
  h2cUrl: string;
  pid: number;
  stop(): Promise<void>;
}

/**
 * The config: each frontend speaks to the workers in its own protocol, which is what HAProxy
 * does best for each (h1 reuses idle keep-alive connections; h2 multiplexes streams over few
 * connections). `http-reuse always` shares idle server connections between client
 * connections, as the gateway shares its keep-alive pool and its one h2c session per worker.
 * Default threads (one per CPU), as a packaged HAProxy runs.
 */
export function haproxyConfig(h1Port: number, h2cPort: number, workers: URL[]): string {
  const servers = (suffix: string) =>
    workers.map((w, i) => `  server w${i + 1} ${w.hostname}:${w.port}${suffix}`).join("\n");
  return `global
  maxconn 4096

defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive

frontend h1
  bind 127.0.0.1:${h1Port}
  default_backend workers_h1

frontend h2c
  bind 127.0.0.1:${h2cPort} proto h2
  default_backend workers_h2

backend workers_h1
  balance roundrobin
  http-reuse always
${servers("")}

backend workers_h2
  balance roundrobin
  http-reuse always
${servers(" proto h2")}
`;
}

/** Starts HAProxy in the foreground and resolves once both frontends accept connections. */
export async function startHAProxy(workers: URL[]): Promise<HAProxy> {
  const [h1Port, h2cPort] = [await freePort(), await freePort()];
  const file = join(tmpdir(), `quartet-bench-haproxy-${process.pid}.cfg`);
  writeFileSync(file, haproxyConfig(h1Port, h2cPort, workers));
  const child: ChildProcess = spawn("haproxy", ["-db", "-f", file], {
    stdio: ["ignore", "inherit", "inherit"],
  });
  const exited = once(child, "exit");
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  for (const port of [h1Port, h2cPort]) await untilListening(port, () => gone);
  return {
    h1Url: `http://127.0.0.1:${h1Port}`,
    h2cUrl: `http://127.0.0.1:${h2cPort}`,
    pid: child.pid!,
    async stop() {
      if (!gone) child.kill("SIGTERM");
      await exited;
    },
  };
}

/** Retries a TCP connect until it succeeds (HAProxy says nothing when it is ready). */
async function untilListening(port: number, exited: () => boolean): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    if (exited()) throw new Error("haproxy exited before listening (see its output above)");
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`haproxy did not listen on port ${port} within 10 s`);
}
