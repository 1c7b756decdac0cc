import { create } from "@bufbuild/protobuf";
import { type Code, ConnectError } from "@connectrpc/connect";
import { type Random, seededRandom } from "@quartet/determinism";
import {
  type Fault,
  type StandingFault as StandingFaultMessage,
  StandingFaultSchema,
} from "@quartet/proto/quartet/worker/v1/worker_pb";
import { sleep } from "./deadline.ts";

/**
 * Waits out a fault's delay, then fails the call (throws) with its code, for the fraction of
 * calls it names (drawn from `random`, so a seeded run replays); resolves when the call goes on.
 */
export async function injectFault(
  fault: Fault,
  random: Random,
  signal: AbortSignal,
): Promise<void> {
  if (fault.delayMs > 0) await sleep(fault.delayMs, signal);
  if (fault.failCode === 0) return;
  if (fault.failFraction !== undefined && random() >= fault.failFraction) return;
  throw new ConnectError(fault.failMessage || "injected fault", fault.failCode as number as Code);
}

/**
 * The fault an admin set for every Compute call on this worker (WorkerAdminService.SetFault),
 * with its own seeded generator (reset by every SetFault, so a demo replays) and its counts.
 */
export class StandingFault {
  #fault: Fault | undefined;
  #seed = 0n;
  #random: Random = seededRandom(0);
  #calls = 0n;
  #failed = 0n;

  /** Replaces the fault (undefined, or one that does nothing, clears it) and resets counts. */
  set(fault: Fault | undefined, seed: bigint): void {
    const inert = !fault || (fault.delayMs === 0 && fault.failCode === 0);
    this.#fault = inert ? undefined : fault;
    this.#seed = seed;
    // The generator takes 32 bits: fold the 64-bit seed so every bit of it counts.
    this.#random = seededRandom(Number(BigInt.asUintN(32, seed ^ (seed >> 32n))));
    this.#calls = 0n;
    this.#failed = 0n;
  }

  get active(): boolean {
    return this.#fault !== undefined;
  }

  /** Applies the fault to one call: resolves when the call goes on, rejects when it fails. */
  async apply(signal: AbortSignal): Promise<void> {
    const fault = this.#fault;
    if (!fault) return;
    this.#calls++;
    try {
      await injectFault(fault, this.#random, signal);
    } catch (e) {
      if (!signal.aborted) this.#failed++;
      throw e;
    }
  }

  describe(): StandingFaultMessage {
    return create(StandingFaultSchema, {
      ...(this.#fault ? { fault: this.#fault } : {}),
      seed: this.#seed,
      calls: this.#calls,
      failed: this.#failed,
    });
  }
}
