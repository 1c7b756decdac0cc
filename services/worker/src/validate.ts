import { Code, ConnectError } from "@connectrpc/connect";
import type {
  ComputeRequest,
  FanoutRequest,
  WatchRequest,
} from "@quartet/proto/quartet/worker/v1/worker_pb";

export const limits = {
  iterations: 10_000_000,
  inputBytes: 4096,
  delayMs: 60_000,
  peers: 16,
  stepsPerWatch: 10_000,
  iterationsPerStep: 1_000_000,
  stepDelayMs: 10_000,
} as const;

function invalid(field: string, problem: string): never {
  throw new ConnectError(`${field}: ${problem}`, Code.InvalidArgument);
}

/** Checks a ComputeRequest; `prefix` names where it sits in an enclosing request. */
export function validateCompute(req: ComputeRequest, prefix = ""): void {
  if (req.iterations > limits.iterations) {
    invalid(`${prefix}iterations`, `${req.iterations} is above the limit of ${limits.iterations}`);
  }
  const inputBytes = Buffer.byteLength(req.input);
  if (inputBytes > limits.inputBytes) {
    invalid(`${prefix}input`, `${inputBytes} bytes is above the limit of ${limits.inputBytes}`);
  }
  const fault = req.fault;
  if (!fault) return;
  if (fault.delayMs > limits.delayMs) {
    invalid(`${prefix}fault.delay_ms`, `${fault.delayMs} is above the limit of ${limits.delayMs}`);
  }
  if (fault.failCode < 0 || fault.failCode > 16) {
    invalid(`${prefix}fault.fail_code`, `${fault.failCode} is not a status code (0 to 16)`);
  }
  if (fault.failCode === 0 && fault.failFraction !== undefined) {
    invalid(
      `${prefix}fault.fail_fraction`,
      "is set but fault.fail_code is not: say which code to fail with",
    );
  }
  const fraction = fault.failFraction;
  if (fraction !== undefined && !(fraction >= 0 && fraction <= 1)) {
    invalid(`${prefix}fault.fail_fraction`, `${fraction} is not in [0, 1]`);
  }
}

/** Parsed peer base URLs of a FanoutRequest; hosts outside `allowedHosts` are refused. */
export function validateFanout(req: FanoutRequest, allowedHosts: ReadonlySet<string>): URL[] {
  if (req.peers.length === 0) invalid("peers", "give at least one peer base URL");
  if (req.peers.length > limits.peers) {
    invalid("peers", `${req.peers.length} peers is above the limit of ${limits.peers}`);
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
  validateCompute(req.request, "request.");
  return urls;
}

export function validateWatch(req: WatchRequest): void {
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
}
