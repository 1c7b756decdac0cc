import { Code, ConnectError } from "@connectrpc/connect";
import type {
  ComputeRequest,
  FanoutRequest,
  Fault,
  WatchRequest,
} from "@quartet/proto/quartet/worker/v1/worker_pb";

/** Fixed bounds on the shape of a request. */
export const limits = {
  inputBytes: 4096,
  delayMs: 60_000,
  stepsPerWatch: 10_000,
  iterationsPerStep: 1_000_000,
  stepDelayMs: 10_000,
} as const;

/** Bounds on the work one call may demand; each is a flag of the worker. */
export interface WorkLimits {
  /** Rounds of SHA-256 one Compute or Watch may ask for (--max-iterations). */
  maxIterations: number;
  /** Peers one Fanout may name (--max-fanout-peers). */
  maxFanoutPeers: number;
  /** Rounds one Fanout may ask for in all, peers x request.iterations (--max-fanout-iterations). */
  maxFanoutIterations: number;
  /** Fanouts a chain of calls may pass through (--max-fanout-depth). */
  maxFanoutDepth: number;
}

/**
 * The defaults: 100,000 rounds take about 0.2 s on one core of the machines here, so no single
 * call holds a core for long; a Fanout may spread four times that over its peers.
 */
export const defaultWorkLimits: WorkLimits = {
  maxIterations: 100_000,
  maxFanoutPeers: 16,
  maxFanoutIterations: 400_000,
  maxFanoutDepth: 1,
};

function invalid(field: string, problem: string): never {
  throw new ConnectError(`${field}: ${problem}`, Code.InvalidArgument);
}

function aboveLimit(field: string, value: string, limit: number, flag: string): never {
  invalid(field, `${value} is above this worker's limit of ${limit} (--${flag})`);
}

/** Checks a ComputeRequest; `prefix` names where it sits in an enclosing request. */
export function validateCompute(req: ComputeRequest, work: WorkLimits, prefix = ""): void {
  if (req.iterations > work.maxIterations) {
    aboveLimit(`${prefix}iterations`, String(req.iterations), work.maxIterations, "max-iterations");
  }
  const inputBytes = Buffer.byteLength(req.input);
  if (inputBytes > limits.inputBytes) {
    invalid(`${prefix}input`, `${inputBytes} bytes is above the limit of ${limits.inputBytes}`);
  }
  if (req.fault) validateFault(req.fault, `${prefix}fault.`);
}

/** Checks a Fault; `prefix` names where it sits (e.g. "fault."). */
export function validateFault(fault: Fault, prefix: string): void {
  if (fault.delayMs > limits.delayMs) {
    invalid(`${prefix}delay_ms`, `${fault.delayMs} is above the limit of ${limits.delayMs}`);
  }
  if (fault.failCode < 0 || fault.failCode > 16) {
    invalid(`${prefix}fail_code`, `${fault.failCode} is not a status code (0 to 16)`);
  }
  if (fault.failCode === 0 && fault.failFraction !== undefined) {
    invalid(
      `${prefix}fail_fraction`,
      `is set but ${prefix}fail_code is not: say which code to fail with`,
    );
  }
  const fraction = fault.failFraction;
  if (fraction !== undefined && !(fraction >= 0 && fraction <= 1)) {
    invalid(`${prefix}fail_fraction`, `${fraction} is not in [0, 1]`);
  }
}

/** The hosts of a comma-separated list such as --fanout-hosts. */
export function hostList(list: string): string[] {
  return list
    .split(",")
    .map((h) => h.trim())
    .filter(Boolean);
}

/** Parsed peer base URLs of a FanoutRequest; hosts outside `allowedHosts` are refused. */
export function validateFanout(
  req: FanoutRequest,
  allowedHosts: ReadonlySet<string>,
  work: WorkLimits,
): URL[] {
  const peers = req.peers.length;
  if (peers === 0) invalid("peers", "give at least one peer base URL");
  if (peers > work.maxFanoutPeers) {
    aboveLimit("peers", `${peers} peers`, work.maxFanoutPeers, "max-fanout-peers");
  }
  const urls = req.peers.map((peer, i) => {
    let url: URL;
    try {
      url = new URL(peer);
    } catch {
      invalid(`peers[${i}]`, `"${peer}" is not a URL; give a base URL like http://127.0.0.1:7202`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      invalid(`peers[${i}]`, `"${peer}" must use http or https`);
    }
    const host = url.hostname.replace(/^\[|\]$/g, "");
    if (!allowedHosts.has(host)) {
      throw new ConnectError(
        `peers[${i}]: host ${host} is not an allowed fan-out host (${[...allowedHosts].join(", ")}); set QUARTET_FANOUT_HOSTS`,
        Code.PermissionDenied,
      );
    }
    return url;
  });
  if (!req.request) invalid("request", "give the Compute request to send to every peer");
  validateCompute(req.request, work, "request.");
  // Every peer may be this worker itself, so the sum is what one call can cost here.
  const total = peers * req.request.iterations;
  if (total > work.maxFanoutIterations) {
    aboveLimit(
      "peers x request.iterations",
      `${peers} x ${req.request.iterations} = ${total}`,
      work.maxFanoutIterations,
      "max-fanout-iterations",
    );
  }
  return urls;
}

export function validateWatch(req: WatchRequest, work: WorkLimits): void {
  if (req.steps < 1 || req.steps > limits.stepsPerWatch) {
    invalid("steps", `${req.steps} is not between 1 and ${limits.stepsPerWatch}`);
  }
  if (req.iterationsPerStep > limits.iterationsPerStep) {
    invalid(
      "iterations_per_step",
      `${req.iterationsPerStep} is above the limit of ${limits.iterationsPerStep}`,
    );
  }
  if (req.stepDelayMs > limits.stepDelayMs) {
    invalid("step_delay_ms", `${req.stepDelayMs} is above the limit of ${limits.stepDelayMs}`);
  }
  const total = req.steps * req.iterationsPerStep;
  if (total > work.maxIterations) {
    aboveLimit(
      "steps x iterations_per_step",
      `${req.steps} x ${req.iterationsPerStep} = ${total}`,
      work.maxIterations,
      "max-iterations",
    );
  }
}
