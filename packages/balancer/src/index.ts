// Re-exported for convenience; the one definition lives in @quartet/determinism.
export { type Clock, type Random, seededRandom, systemClock } from "@quartet/determinism";
export {
  createEndpoint,
  type Endpoint,
  type EndpointAddress,
  isValidWeight,
  setEndpointWeight,
} from "./endpoint.ts";
export { hashKey, hashString, xxhash32 } from "./hash.ts";
export {
  ActiveHealthCheck,
  type HealthCheckMode,
  type HealthCheckOptions,
} from "./health/active.ts";
export {
  type OutlierDetectionOptions,
  OutlierDetector,
  type OutlierState,
} from "./health/outlier.ts";
export { type BoundedLoadOptions, createBoundedLoadPicker } from "./pickers/bounded-load.ts";
export { createPicker, type PickerOptions, pickerKinds } from "./pickers/index.ts";
export { createLeastConnectionsPicker } from "./pickers/least-connections.ts";
export { createLeastRequestPicker, type LeastRequestOptions } from "./pickers/least-request.ts";
export { createMaglevPicker, type MaglevOptions } from "./pickers/maglev.ts";
export type { Picker, PickerKind } from "./pickers/picker.ts";
export type { RingOptions } from "./pickers/ring.ts";
export { createRingHashPicker, type RingHashOptions } from "./pickers/ring-hash.ts";
export { createRoundRobinPicker, type RoundRobinOptions } from "./pickers/round-robin.ts";
export {
  createWeightedRoundRobinPicker,
  type WeightedRoundRobinOptions,
} from "./pickers/weighted-round-robin.ts";
export { EndpointPool, type EndpointPoolOptions, type EndpointStats, type Lease } from "./pool.ts";
export {
  createManualResolver,
  type ManualResolver,
  type Resolver,
  type ResolverListener,
  staticResolver,
} from "./resolver.ts";
export { RequestNotSentError, requestNotSent } from "./session.ts";
export {
  type BalancedTransport,
  type BalancedTransportOptions,
  createBalancedTransport,
  type HashKeySource,
  type RetryOptions,
} from "./transport.ts";
