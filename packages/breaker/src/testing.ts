// Test doubles, re-exported from @quartet/determinism so breaker users need one import path.
export { seededRandom } from "@quartet/determinism";
export { FakeClock } from "@quartet/determinism/testing";
