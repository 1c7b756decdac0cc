// `npm start`: runs the whole suite on this machine, each service as its own process, restarts
// any that crash (with backoff), and prints where to click and what to curl.
import { type ChildProcess, spawn } from "node:child_process";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

interface ServiceSpec {
  name: string;
  entry: string;
  args: string[];
  url: string;
}

const broker: ServiceSpec = {
  name: "broker",
  entry: "services/broker/src/main.ts",
  args: ["--port", "7100", "--data-dir", join(tmpdir(), "quartet-broker"), "--queues", "jobs"],
  url: "http://127.0.0.1:7100",
};
// Each worker also consumes the "jobs" queue and answers requests on "compute.sha".
const workers: ServiceSpec[] = [7201, 7202, 7203].map((port) => ({
  name: `worker-${port}`,
  entry: "services/worker/src/main.ts",
  args: [
    ...["--port", String(port), "--id", `worker-${port}`, "--broker-url", broker.url],
    ...["--queue", "jobs", "--request-subject", "compute.sha"],
  ],
  url: `http://127.0.0.1:${port}`,
}));
const services = [broker, ...workers];

const children = new Map<string, ChildProcess>();
let stopping = false;
const width = Math.max(...services.map((s) => s.name.length));

function start(spec: ServiceSpec, attempt = 0): void {
  const child = spawn(process.execPath, [join(root, spec.entry), ...spec.args], {
    cwd: root,
    env: process.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.set(spec.name, child);
  const startedAt = Date.now();
  const prefix = `${spec.name.padEnd(width)} |`;
  for (const stream of [child.stdout!, child.stderr!]) {
    createInterface({ input: stream }).on("line", (line) =>
      console.log(`${prefix} ${summarise(line)}`),
    );
  }
  child.on("exit", (code, signal) => {
    children.delete(spec.name);
    if (stopping) return;
    // A service that ran for a while gets a fresh backoff; one that keeps crashing waits longer.
    const next = Date.now() - startedAt > 10_000 ? 0 : attempt + 1;
    const wait = Math.min(30_000, 250 * 2 ** next);
    console.log(`${prefix} exited (code ${code}, signal ${signal}); restarting in ${wait} ms`);
    setTimeout(() => start(spec, next), wait).unref();
  });
}

/** Pino JSON lines become "level msg key=value" for people; anything else passes through. */
function summarise(line: string): string {
  try {
    const {
      level,
      msg,
      time: _t,
      pid: _p,
      hostname: _h,
      service: _s,
      name: _n,
      ...rest
    } = JSON.parse(line);
    const levels: Record<number, string> = {
      10: "trace",
      20: "debug",
      30: "info",
      40: "warn",
      50: "error",
      60: "fatal",
    };
    const extra = Object.entries(rest).map(
      ([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`,
    );
    return [levels[level] ?? level, msg, ...extra].join(" ");
  } catch {
    return line;
  }
}

function stop(signal: NodeJS.Signals): void {
  if (stopping) return;
  stopping = true;
  console.log(`\n${signal}: stopping ${children.size} services (they drain in-flight calls first)`);
  for (const child of children.values()) child.kill("SIGTERM");
  const done = () => children.size === 0 && process.exit(0);
  for (const child of children.values()) child.on("exit", done);
  done();
}
process.on("SIGINT", stop);
process.on("SIGTERM", stop);

console.log(`Quartet on node ${process.version}: starting ${services.length} services`);
for (const spec of services) start(spec);

const [w1, w2, w3] = workers.map((w) => w.url);
console.log(`
Workers: ${workers.map((w) => w.url).join("  ")}

Try:
  curl -s ${w1}/quartet.worker.v1.WorkerService/Compute \\
    -H 'Content-Type: application/json' -d '{"iterations": 1000, "input": "hello"}'

  curl -s ${w1}/quartet.worker.v1.WorkerService/Fanout -H 'Content-Type: application/json' \\
    -d '{"peers": ["${w2}", "${w3}"], "request": {"iterations": 100}}'

  npx buf curl --http2-prior-knowledge --list-methods ${w1}
  curl -s ${w1}/metrics | head

Broker: ${broker.url} (see services/broker/README.md); a request answered by a worker:
  curl -s ${broker.url}/quartet.broker.v1.BrokerService/Request -H 'Content-Type: application/json' \\
    -d '{"subject": "compute.sha", "payload": "EgVoZWxsbw=="}'
  curl -s ${broker.url}/quartet.broker.v1.BrokerService/Stats -H 'Content-Type: application/json' -d '{"queue": "jobs"}'

Ctrl-C stops everything.
`);
