// The supervisor of `npm start`: runs each service as its own process, restarts one that ends
// without being asked to (with backoff, and says so), and lets the dashboard list, watch, kill,
// stop and start them through quartet.suite.v1.SupervisorService.
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import {
  type Process,
  ProcessSchema,
  SupervisorService,
} from "@quartet/proto/quartet/suite/v1/supervisor_pb";
import { ChangeWaiter } from "@quartet/server";

export interface ServiceSpec {
  name: string;
  entry: string;
  args: string[];
  url: string;
  /** What it is, for the table. */
  role: string;
  /**
   * Stopped only after every other service has exited: the consensus members hold the
   * registry, and the others deregister from it as they stop, which needs a quorum.
   */
  stopLast?: boolean;
}

export interface SupervisorOptions {
  /** The repository root: entries are relative to it, and it is each process's cwd. */
  root: string;
  env: NodeJS.ProcessEnv;
  /** Each service's output goes to <logDir>/<name>.log. */
  logDir: string;
  /** Lines for a person (warnings, errors, restarts); default console.log. */
  print?: (line: string) => void;
}

type State = "starting" | "running" | "backoff" | "stopping" | "stopped";

interface Supervised {
  spec: ServiceSpec;
  child: ChildProcess | undefined;
  state: State;
  restarts: number;
  /** Crashes in a row without a long enough run: the backoff's exponent. */
  attempt: number;
  lastExit: string;
  startedAt: number;
  restartAt: number;
  restartTimer: NodeJS.Timeout | undefined;
}

/** A run this long resets the backoff: the service was fine, something new went wrong. */
const healthyRunMs = 10_000;

export class Supervisor {
  readonly #options: SupervisorOptions;
  readonly #print: (line: string) => void;
  readonly #services = new Map<string, Supervised>();
  readonly #listeners = new Set<() => void>();
  readonly #width: number;
  #stopping = false;

  constructor(specs: readonly ServiceSpec[], options: SupervisorOptions) {
    this.#options = options;
    this.#print = options.print ?? ((line) => console.log(line));
    this.#width = Math.max(...specs.map((s) => s.name.length));
    for (const spec of specs) {
      this.#services.set(spec.name, {
        spec,
        child: undefined,
        state: "stopped",
        restarts: 0,
        attempt: 0,
        lastExit: "",
        startedAt: 0,
        restartAt: 0,
        restartTimer: undefined,
      });
    }
  }

  /** True once stopAll began: nothing is restarted any more. */
  get stopping(): boolean {
    return this.#stopping;
  }

  startAll(): void {
    for (const s of this.#services.values()) this.#spawn(s);
  }

  list(): Process[] {
    return [...this.#services.values()].map((s) =>
      create(ProcessSchema, {
        name: s.spec.name,
        role: s.spec.role,
        url: s.spec.url,
        state: s.state,
        pid: s.child?.pid ?? 0,
        restarts: s.restarts,
        lastExit: s.lastExit,
        startedAtUnixMs: BigInt(s.child ? s.startedAt : 0),
        restartAtUnixMs: BigInt(s.state === "backoff" ? s.restartAt : 0),
      }),
    );
  }

  /** Calls `listener` after every change of any process until the returned function is called. */
  listen(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** SIGKILL, as a crash would: the service is restarted after its backoff. */
  kill(name: string): Process {
    const s = this.#get(name);
    if (!s.child || s.state !== "running")
      throw new ConnectError(
        `${name} is ${s.state}, not running: there is nothing to kill`,
        Code.FailedPrecondition,
      );
    s.child.kill("SIGKILL");
    return this.#describe(s);
  }

  /** SIGTERM (it drains), and no restart until start(). */
  stop(name: string): Process {
    const s = this.#get(name);
    this.#cancelRestart(s);
    if (s.child) {
      s.state = "stopping";
      s.child.kill("SIGTERM");
    } else {
      s.state = "stopped";
    }
    this.#changed();
    return this.#describe(s);
  }

  /** Starts a stopped service, or one waiting out its backoff, now. */
  start(name: string): Process {
    const s = this.#get(name);
    if (s.child)
      throw new ConnectError(
        `${name} is ${s.state} (pid ${s.child.pid}); stop or kill it first`,
        Code.FailedPrecondition,
      );
    this.#cancelRestart(s);
    s.attempt = 0;
    this.#spawn(s);
    return this.#describe(s);
  }

  /**
   * SIGTERM to every service; resolves when all have exited. Those marked stopLast get theirs
   * once the others are gone.
   */
  async stopAll(): Promise<void> {
    this.#stopping = true;
    const all = [...this.#services.values()];
    for (const s of all) this.#cancelRestart(s);
    await this.#terminate(all.filter((s) => !s.spec.stopLast));
    await this.#terminate(all.filter((s) => s.spec.stopLast));
  }

  #terminate(services: Supervised[]): Promise<void> {
    const running: Promise<unknown>[] = [];
    for (const s of services) {
      if (!s.child) continue;
      s.state = "stopping";
      const child = s.child;
      running.push(new Promise((resolve) => child.once("exit", resolve)));
      child.kill("SIGTERM");
    }
    this.#changed();
    return Promise.all(running).then(() => {});
  }

  /** How many services have a process now. */
  get running(): number {
    let n = 0;
    for (const s of this.#services.values()) if (s.child) n++;
    return n;
  }

  #get(name: string): Supervised {
    const s = this.#services.get(name);
    if (!s)
      throw new ConnectError(
        `no service named "${name}"; known: ${[...this.#services.keys()].join(", ")}`,
        Code.NotFound,
      );
    return s;
  }

  #describe(s: Supervised): Process {
    return this.list().find((p) => p.name === s.spec.name)!;
  }

  #cancelRestart(s: Supervised): void {
    if (s.restartTimer) clearTimeout(s.restartTimer);
    s.restartTimer = undefined;
  }

  #spawn(s: Supervised): void {
    const { spec } = s;
    const child = spawn(process.execPath, [join(this.#options.root, spec.entry), ...spec.args], {
      cwd: this.#options.root,
      env: this.#options.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    s.child = child;
    s.state = "starting";
    s.startedAt = Date.now();
    const prefix = `${spec.name.padEnd(this.#width)} |`;
    const log = createWriteStream(join(this.#options.logDir, `${spec.name}.log`), { flags: "a" });
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on("line", (line) => {
        log.write(`${line}\n`);
        // The terminal gets what needs a person: warnings, errors, and anything not a log line.
        const level = levelOf(line);
        if (level === undefined || level >= 40) this.#print(`${prefix} ${summarise(line)}`);
      });
    }
    child.once("spawn", () => {
      if (s.child !== child) return;
      s.state = "running";
      this.#changed();
    });
    child.once("exit", (code, signal) => {
      log.end();
      s.child = undefined;
      s.lastExit = signal ? `signal ${signal}` : `exit code ${code}`;
      if (this.#stopping || s.state === "stopping") {
        s.state = "stopped";
        this.#changed();
        return;
      }
      // Exit code 0 is the service's own decision (a consensus member removed from the
      // cluster, a drain asked for by someone else): restarting it would undo that.
      if (code === 0) {
        this.#print(
          `${prefix} exited cleanly (exit code 0); not restarting it (start it again from the dashboard or with npm start)`,
        );
        s.state = "stopped";
        this.#changed();
        return;
      }
      // A service that ran for a while gets a fresh backoff; one that keeps crashing waits longer.
      s.attempt = Date.now() - s.startedAt > healthyRunMs ? 0 : s.attempt + 1;
      const wait = Math.min(30_000, 250 * 2 ** s.attempt);
      this.#print(`${prefix} exited (${s.lastExit}); restarting in ${wait} ms`);
      s.state = "backoff";
      s.restartAt = Date.now() + wait;
      s.restartTimer = setTimeout(() => {
        s.restartTimer = undefined;
        s.restarts++;
        this.#spawn(s);
      }, wait);
      s.restartTimer.unref();
      this.#changed();
    });
    this.#changed();
  }

  #changed(): void {
    for (const listener of this.#listeners) listener();
  }
}

/** quartet.suite.v1.SupervisorService over a Supervisor. */
export function supervisorRoutes(supervisor: Supervisor): (router: ConnectRouter) => void {
  return (router) =>
    router.service(SupervisorService, {
      listProcesses: () => ({ processes: supervisor.list() }),
      async *watchProcesses(_req, ctx) {
        const changes = new ChangeWaiter((changed) => supervisor.listen(changed), ctx.signal);
        try {
          while (!ctx.signal.aborted) {
            if (changes.take()) yield { processes: supervisor.list() };
            await changes.wait();
          }
        } finally {
          changes.close();
        }
      },
      killProcess: (req) => ({ process: supervisor.kill(req.name) }),
      stopProcess: (req) => ({ process: supervisor.stop(req.name) }),
      startProcess: (req) => ({ process: supervisor.start(req.name) }),
    });
}

/** A pino line's level (30 info, 40 warn...), undefined for anything else. */
function levelOf(line: string): number | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const level = (JSON.parse(line) as { level?: unknown }).level;
    return typeof level === "number" ? level : undefined;
  } catch {
    return undefined;
  }
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
