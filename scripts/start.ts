// `npm start`: runs the whole suite on this machine, each service as its own process, restarts
// any that crash (with backoff), waits quietly until every one answers its health check, and
// then prints one table: what runs where, the credential, and what to curl. Service logs go to
// files in the data directory; only warnings, errors and restarts reach the terminal.
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildDashboard, dashboardBuildNeeded } from "@quartet/dashboard/build";
import { createLogger, type Server, serve } from "@quartet/server";
import { type ServiceSpec, Supervisor, supervisorRoutes } from "./supervisor.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

// QUARTET_PORT_BASE moves the whole suite (consensus on base-99..-97, broker on base, workers
// on base+101..103, gateway on base+980: 7001-7003, 7100, 7201-7203 and 8080 by default), so
// a second suite or a test can run beside the default one.
const base = Number(process.env.QUARTET_PORT_BASE ?? 7100);
if (!Number.isInteger(base) || base < 1 || base > 65_000) {
  console.error(
    `QUARTET_PORT_BASE must be a port number up to 65000, got "${process.env.QUARTET_PORT_BASE}"`,
  );
  process.exit(2);
}
// All state of `npm start` lives in one directory; `npm start -- --fresh` empties it first.
const dataDir = process.env.QUARTET_DATA_DIR ?? join(tmpdir(), "quartet");
if (process.argv.includes("--fresh")) rmSync(dataDir, { recursive: true, force: true });
mkdirSync(dataDir, { recursive: true, mode: 0o700 });
// The local cluster credential: made once, kept (mode 0600) so curl examples keep working
// across restarts, and given to the services through the environment, never argv.
const tokenFile = join(dataDir, "cluster-token");
if (!existsSync(tokenFile))
  writeFileSync(tokenFile, randomBytes(32).toString("base64url"), { mode: 0o600 });
chmodSync(tokenFile, 0o600);
const clusterToken = readFileSync(tokenFile, "utf8").trim();
// Fault controls (isolate or crash a Raft member, make a worker fail) are on for the dashboard.
const serviceEnv = {
  ...process.env,
  QUARTET_CLUSTER_TOKEN: clusterToken,
  QUARTET_FAULT_CONTROLS: "true",
};

// Every service registers itself in the consensus cluster's registry; the gateway routes by it.
const consensusUrls = [1, 2, 3].map((m) => `http://127.0.0.1:${base - 100 + m}`).join(",");
const registry = ["--registry", consensusUrls, "--registry-ttl-s", "10"];
const consensus: ServiceSpec[] = [1, 2, 3].map((id) => {
  const peers = [1, 2, 3].map((m) => `${m}=http://127.0.0.1:${base - 100 + m}`).join(",");
  return {
    name: `consensus-${id}`,
    entry: "services/consensus/src/main.ts",
    args: [
      ...["--id", String(id), "--peers", peers, "--data-dir", join(dataDir, `consensus-${id}`)],
      ...registry,
    ],
    url: `http://127.0.0.1:${base - 100 + id}`,
    role: "Raft KV store member",
    stopLast: true,
  };
});
const broker: ServiceSpec = {
  name: "broker",
  entry: "services/broker/src/main.ts",
  args: [
    ...["--port", String(base), "--data-dir", join(dataDir, "broker"), "--queues", "jobs"],
    ...registry,
  ],
  url: `http://127.0.0.1:${base}`,
  role: "pub/sub, request-reply, work queues",
};
// Each worker also consumes the "jobs" queue and answers requests on "compute.sha".
const workers: ServiceSpec[] = [base + 101, base + 102, base + 103].map((port) => ({
  name: `worker-${port}`,
  entry: "services/worker/src/main.ts",
  args: [
    ...["--port", String(port), "--id", `worker-${port}`, "--broker-url", broker.url],
    ...["--queue", "jobs", "--request-subject", "compute.sha"],
    ...registry,
  ],
  url: `http://127.0.0.1:${port}`,
  role: "Compute, Fanout, Watch; consumes jobs",
}));
const gateway: ServiceSpec = {
  name: "gateway",
  entry: "services/balancer/src/main.ts",
  // No static routes: a route per service registered, endpoints added and removed live.
  args: ["--port", String(base + 980), "--discovery", consensusUrls, ...registry],
  url: `http://127.0.0.1:${base + 980}`,
  role: "gateway: one address for every service, REST at /v1",
};
// The supervisor's own API (the dashboard's kill/restart buttons), also routed by the gateway.
const supervisorUrl = `http://127.0.0.1:${base + 981}`;
gateway.args.push("--route", `quartet.suite.v1.SupervisorService=${supervisorUrl}`);
const services = [...consensus, broker, ...workers, gateway];
const logDir = join(dataDir, "logs");
mkdirSync(logDir, { recursive: true });

const width = Math.max(...services.map((s) => s.name.length), "supervisor".length);
const supervisor = new Supervisor(services, { root, env: serviceEnv, logDir });
let supervisorServer: Server | undefined;

function stop(reason: string): void {
  if (supervisor.stopping) return;
  console.log(
    `\n${reason}: stopping ${supervisor.running} services (they drain in-flight calls first)`,
  );
  void supervisor.stopAll().then(() => process.exit(0));
  void supervisorServer?.close();
}
process.on("SIGINT", stop);
process.on("SIGTERM", stop);

/**
 * npm does not pass a SIGTERM sent to its own pid on to this process (a process manager or an
 * IDE stops `npm start` that way), and `sh -c` may stand between npm and us: so watch the
 * parent and grandparent, and stop the services when either is gone.
 */
function parentOf(pid: number): number | undefined {
  try {
    // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after ")".
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return undefined;
  }
}
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
const watched = [process.ppid, parentOf(process.ppid)].filter(
  (pid): pid is number => pid !== undefined && pid > 1,
);
setInterval(() => {
  if (watched.some((pid) => !alive(pid))) stop("npm (the parent process) exited");
}, 500).unref();

// A second `npm start` (or anything else on these ports) would make every service fail with
// EADDRINUSE and restart forever: say which ports are taken instead.
function portTaken(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(true));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(false)));
  });
}
const ports = [...services.map((s) => s.url), supervisorUrl].map((u) => Number(new URL(u).port));
const takenFlags = await Promise.all(ports.map(portTaken));
const taken = ports.filter((_, i) => takenFlags[i]);
if (taken.length > 0) {
  console.error(
    `Ports ${taken.join(", ")} are taken (another \`npm start\`?). Stop it, or move this suite: QUARTET_PORT_BASE=17100 npm start`,
  );
  process.exit(1);
}
// The gateway serves the dashboard's build: make it when it is missing or older than its sources.
const dashboardBuild = dashboardBuildNeeded();
if (dashboardBuild) {
  console.log(`Building the dashboard (${dashboardBuild} build)...`);
  await buildDashboard().catch((error: Error) => console.error(error.message));
}
supervisor.startAll();
supervisorServer = await serve({
  name: "quartet-supervisor",
  host: "127.0.0.1",
  port: base + 981,
  logger: createLogger("quartet-supervisor", "warn"),
  routes: supervisorRoutes(supervisor),
  auth: {
    token: clusterToken,
    protects: (procedure) => procedure.startsWith("/quartet.suite.v1."),
  },
});
console.log(
  `Quartet on node ${process.version}: starting ${services.length} services (logs in ${logDir})...`,
);

/** Whether a service answers grpc.health.v1 Check with SERVING. */
async function healthy(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/grpc.health.v1.Health/Check`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "{}",
      signal: AbortSignal.timeout(1000),
    });
    return res.ok && ((await res.json()) as { status?: string }).status === "SERVING";
  } catch {
    return false;
  }
}
/** Whether the gateway has discovered an endpoint of each service the READMEs call through it. */
async function discovered(): Promise<boolean> {
  try {
    const res = await fetch(`${gateway.url}/quartet.balancer.v1.BalancerAdminService/ListRoutes`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${clusterToken}` },
      body: "{}",
      signal: AbortSignal.timeout(1000),
    });
    const { routes = [] } = (await res.json()) as {
      routes?: { service: string; endpoints?: unknown[] }[];
    };
    return ["worker.v1.WorkerService", "broker.v1.BrokerService", "consensus.v1.KVService"].every(
      (svc) => routes.some((r) => r.service === `quartet.${svc}` && (r.endpoints?.length ?? 0) > 0),
    );
  } catch {
    return false;
  }
}
// Quiet until every service answers its health check and is routed, then one table.
while (
  !supervisor.stopping &&
  !(await Promise.all([...services.map((s) => healthy(s.url)), discovered()])).every(Boolean)
) {
  await new Promise((resolve) => setTimeout(resolve, 250));
}
if (!supervisor.stopping) {
  const rows = [
    ...services.map((s) => `  ${s.name.padEnd(width)}  ${s.url.padEnd(24)}  ${s.role}`),
    `  ${"supervisor".padEnd(width)}  ${supervisorUrl.padEnd(24)}  this process: list, kill, restart services`,
  ];
  const gw = gateway.url;
  console.log(`
All ${services.length} services are ready:
${rows.join("\n")}

Dashboard (the credential rides in the URL's fragment, which never reaches a server or a log):
  ${gateway.url}/#token=${clusterToken}

Try (through the gateway; every service also answers on its own port):
  curl -s ${gw}/v1/compute -H 'Content-Type: application/json' -d '{"iterations": 1000, "input": "hello"}'
  curl -s ${gw}/quartet.consensus.v1.KVService/Put -H 'Content-Type: application/json' \\
    -d '{"key": "Z3JlZXRpbmc=", "value": "aGVsbG8="}'
  curl -s ${broker.url}/quartet.broker.v1.BrokerService/Request -H 'Content-Type: application/json' \\
    -d '{"subject": "compute.sha", "payload": "EgVoZWxsbw=="}'

Cluster credential (admin calls; kept in ${tokenFile}, mode 0600):
  -H "Authorization: Bearer $(cat ${tokenFile})"
State: ${dataDir} (npm start -- --fresh starts from empty). Ctrl-C stops everything.
`);
}
