// Quality of the pickers: load spread and keys moved for the hashing pickers, pick cost for all.
// Standalone: `node bench/balancer/quality.ts`; `npm run bench -- balancer` runs it too.
import { PerformanceObserver } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import {
  createEndpoint,
  createPicker,
  type Endpoint,
  hashKey,
  type Picker,
  type PickerKind,
  pickerKinds,
  seededRandom,
} from "@quartet/balancer";
import { type Figure, report } from "../lib/report.ts";

const KEYS = 1_000_000;
const hashes = new Uint32Array(KEYS);
for (let i = 0; i < KEYS; i++) hashes[i] = hashKey(`key-${i}`);

function endpoints(n: number): Endpoint[] {
  return Array.from({ length: n }, (_, i) =>
    createEndpoint({ id: `endpoint-${i}`, address: `http://10.0.0.${i + 1}:7201` }),
  );
}

/**
 * Endpoint index of every key. For bounded loads each key stays on its endpoint (in flight),
 * so later keys see the load of earlier ones, as long-lived sessions would.
 */
function assign(kind: PickerKind, list: Endpoint[], keys: Uint32Array = hashes): Int32Array {
  for (const e of list) e.inFlight = 0;
  const picker = createPicker(kind, { epsilon: 0.25 });
  picker.update(list);
  const index = new Map(list.map((e, i) => [e, i]));
  const out = new Int32Array(keys.length);
  for (let i = 0; i < keys.length; i++) {
    const e = picker.pick(keys[i])!;
    if (kind === "bounded_load") picker.callStarted(e);
    out[i] = index.get(e)!;
  }
  return out;
}

function maxOverMean(assignment: Int32Array, n: number): number {
  const counts = new Float64Array(n);
  for (const i of assignment) counts[i]!++;
  return Math.max(...counts) / (KEYS / n);
}

/** Share of keys whose endpoint (by id) differs between two assignments. */
function moved(a: Int32Array, aList: Endpoint[], b: Int32Array, bList: Endpoint[]): number {
  let n = 0;
  for (let i = 0; i < KEYS; i++) if (aList[a[i]!]!.id !== bList[b[i]!]!.id) n++;
  return n / KEYS;
}

/** Average cost of one pick among 10 endpoints, and how many GCs ran during the picks. */
async function pickCost(kind: PickerKind): Promise<{ ns: number; gcs: number }> {
  const picker: Picker = createPicker(kind, { random: seededRandom(1) });
  const list = endpoints(10);
  picker.update(list);
  // Some load, so least-* pickers compare real counts.
  for (let i = 0; i < 20; i++) picker.callStarted(list[i % 7]!);
  const rounds = 3_000_000;
  let sink = 0;
  for (let i = 0; i < 200_000; i++) sink += picker.pick(hashes[i & 0xfffff])!.weight; // warm-up
  globalThis.gc?.();
  let gcs = 0;
  const observer = new PerformanceObserver((list) => {
    gcs += list.getEntries().length;
  });
  observer.observe({ entryTypes: ["gc"] });
  const start = performance.now();
  for (let i = 0; i < rounds; i++) sink += picker.pick(hashes[i % KEYS])!.weight;
  const ns = ((performance.now() - start) * 1e6) / rounds;
  await new Promise((resolve) => setImmediate(resolve));
  observer.disconnect();
  if (sink < 0) console.log(sink);
  return { ns, gcs };
}

export async function measureQuality(): Promise<{
  figures: Record<string, Figure>;
  notes: string[];
}> {
  const figures: Record<string, Figure> = {};
  const notes: string[] = [];
  const ten = endpoints(10);
  const eleven = endpoints(11);
  const nine = ten.filter((_, i) => i !== 4);
  for (const kind of ["ring_hash", "maglev", "bounded_load"] as const) {
    const base = assign(kind, ten);
    figures[`${kind}/max_over_mean`] = { value: maxOverMean(base, 10), unit: "x" };
    figures[`${kind}/moved_on_join`] = {
      value: moved(base, ten, assign(kind, eleven), eleven),
      unit: "share",
    };
    const afterLeave = assign(kind, nine);
    figures[`${kind}/moved_on_leave`] = {
      value: moved(base, ten, afterLeave, nine),
      unit: "share",
    };
    let strays = 0;
    for (let i = 0; i < KEYS; i++)
      if (base[i] !== 4 && ten[base[i]!]!.id !== nine[afterLeave[i]!]!.id) strays++;
    figures[`${kind}/moved_not_on_leaver`] = { value: strays / KEYS, unit: "share" };
  }
  // Skew: every tenth key is the same hot key, as one busy tenant or session would be.
  const skewed = hashes.map((h, i) => (i % 10 === 0 ? hashes[0]! : h));
  for (const kind of ["ring_hash", "bounded_load"] as const) {
    figures[`${kind}/max_over_mean_hot_key`] = {
      value: maxOverMean(assign(kind, ten, skewed), 10),
      unit: "x",
    };
  }
  notes.push(
    "hot_key: every 10th of the 1M keys is one same key",
    `${KEYS.toLocaleString("en-US")} keys over 10 endpoints; join adds an 11th (ideal moved share 1/11 = 0.0909), leave removes one of 10 (ideal 0.1, all of them the leaver's)`,
    "bounded_load places keys in sequence and keeps each one (load = keys held), e = 0.25",
  );
  for (const kind of pickerKinds) {
    const { ns, gcs } = await pickCost(kind);
    figures[`${kind}/pick`] = { value: ns, unit: "ns/pick" };
    figures[`${kind}/gc_during_3M_picks`] = { value: gcs, unit: "GCs" };
  }
  return { figures, notes };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { figures, notes } = await measureQuality();
  report("balancer-quality", figures, {}, notes);
}
