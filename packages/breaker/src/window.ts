/**
 * Sliding windows of call outcomes. Each counts `total` calls and how many of them were `hits`
 * (failed, or slow, depending on the policy that owns it). Recording is O(1) and allocation-free:
 * all storage is allocated once, up front.
 */
export interface OutcomeWindow {
  /** Records one call at time `now` (ms). */
  add(hit: boolean, now: number): void;
  /** Calls in the window as of the last `add` or `advance`. */
  readonly total: number;
  /** Hits in the window as of the last `add` or `advance`. */
  readonly hits: number;
  /** Drops what has slid out of the window by time `now`. */
  advance(now: number): void;
  clear(): void;
  /** Human-readable span of the window, for health reasons, e.g. "last 20 calls". */
  describe(): string;
}

/** How a rate policy windows its calls. */
export type WindowSpec =
  | { readonly kind: "count"; readonly size: number }
  | { readonly kind: "time"; readonly sizeMs: number; readonly buckets: number };

/** The last `size` calls. */
export function countWindow(size: number): WindowSpec {
  return { kind: "count", size };
}

/**
 * Calls in the last `sizeMs` milliseconds, kept in `buckets` buckets of `sizeMs / buckets` ms
 * each; a whole bucket expires at once, so the window slides in steps of one bucket.
 */
export function timeWindow(sizeMs: number, buckets = 10): WindowSpec {
  return { kind: "time", sizeMs, buckets };
}

export function createWindow(spec: WindowSpec): OutcomeWindow {
  if (spec.kind === "count") {
    if (!Number.isInteger(spec.size) || spec.size < 1)
      throw new RangeError(`count window size must be an integer >= 1, got ${spec.size}`);
    return new CountWindow(spec.size);
  }
  if (!Number.isInteger(spec.buckets) || spec.buckets < 1)
    throw new RangeError(`time window buckets must be an integer >= 1, got ${spec.buckets}`);
  if (!(spec.sizeMs >= spec.buckets))
    throw new RangeError(
      `time window sizeMs must be >= its bucket count (${spec.buckets}), got ${spec.sizeMs}`,
    );
  return new TimeWindow(spec.sizeMs, spec.buckets);
}

/** Ring buffer of the last `size` outcomes, one byte each. */
class CountWindow implements OutcomeWindow {
  total = 0;
  hits = 0;
  readonly #ring: Uint8Array;
  #next = 0;

  constructor(size: number) {
    this.#ring = new Uint8Array(size);
  }

  add(hit: boolean): void {
    const ring = this.#ring;
    const i = this.#next;
    if (this.total === ring.length) this.hits -= ring[i]!;
    else this.total++;
    const value = hit ? 1 : 0;
    ring[i] = value;
    this.hits += value;
    this.#next = i + 1 === ring.length ? 0 : i + 1;
  }

  advance(): void {}

  clear(): void {
    this.total = 0;
    this.hits = 0;
    this.#next = 0;
  }

  describe(): string {
    return `last ${this.#ring.length} calls`;
  }
}

/**
 * Ring of time buckets. Bucket `i` holds the calls of bucket-epoch `e` with `e % buckets === i`;
 * moving to a later epoch clears the buckets skipped over, so each bucket is cleared at most
 * once per lap and recording stays O(1) amortised.
 */
class TimeWindow implements OutcomeWindow {
  total = 0;
  hits = 0;
  readonly #sizeMs: number;
  readonly #bucketMs: number;
  readonly #totals: Float64Array;
  readonly #hits: Float64Array;
  /** Epoch (now / bucketMs, floored) of the newest bucket; -1 when empty. */
  #head = -1;

  constructor(sizeMs: number, buckets: number) {
    this.#sizeMs = sizeMs;
    this.#bucketMs = sizeMs / buckets;
    this.#totals = new Float64Array(buckets);
    this.#hits = new Float64Array(buckets);
  }

  add(hit: boolean, now: number): void {
    this.advance(now);
    const i = this.#head % this.#totals.length;
    this.#totals[i]!++;
    this.total++;
    if (hit) {
      this.#hits[i]!++;
      this.hits++;
    }
  }

  advance(now: number): void {
    const epoch = Math.floor(now / this.#bucketMs);
    const head = this.#head;
    if (epoch <= head) return;
    const n = this.#totals.length;
    if (head < 0 || epoch - head >= n) {
      this.clear();
    } else {
      for (let e = head + 1; e <= epoch; e++) {
        const i = e % n;
        this.total -= this.#totals[i]!;
        this.hits -= this.#hits[i]!;
        this.#totals[i] = 0;
        this.#hits[i] = 0;
      }
    }
    this.#head = epoch;
  }

  clear(): void {
    this.#totals.fill(0);
    this.#hits.fill(0);
    this.total = 0;
    this.hits = 0;
    this.#head = -1;
  }

  describe(): string {
    return `last ${this.#sizeMs} ms`;
  }
}
