import { type BoundedLoadOptions, createBoundedLoadPicker } from "./bounded-load.ts";
import { createLeastConnectionsPicker } from "./least-connections.ts";
import { createLeastRequestPicker, type LeastRequestOptions } from "./least-request.ts";
import { createMaglevPicker, type MaglevOptions } from "./maglev.ts";
import type { Picker, PickerKind } from "./picker.ts";
import { createRingHashPicker, type RingHashOptions } from "./ring-hash.ts";
import { createRoundRobinPicker, type RoundRobinOptions } from "./round-robin.ts";
import {
  createWeightedRoundRobinPicker,
  type WeightedRoundRobinOptions,
} from "./weighted-round-robin.ts";

export type PickerOptions = RoundRobinOptions &
  LeastRequestOptions &
  RingHashOptions &
  MaglevOptions &
  BoundedLoadOptions &
  WeightedRoundRobinOptions;

/** Creates a built-in picker by name; options that do not apply to it are ignored. */
export function createPicker(kind: PickerKind, options: PickerOptions = {}): Picker {
  switch (kind) {
    case "round_robin":
      return createRoundRobinPicker(options);
    case "weighted_round_robin":
      return createWeightedRoundRobinPicker(options);
    case "least_connections":
      return createLeastConnectionsPicker();
    case "least_request":
      return createLeastRequestPicker(options);
    case "ring_hash":
      return createRingHashPicker(options);
    case "maglev":
      return createMaglevPicker(options);
    case "bounded_load":
      return createBoundedLoadPicker(options);
    default:
      throw new Error(`unknown picker "${kind as string}"`);
  }
}

export const pickerKinds: readonly PickerKind[] = [
  "round_robin",
  "weighted_round_robin",
  "least_connections",
  "least_request",
  "ring_hash",
  "maglev",
  "bounded_load",
];
