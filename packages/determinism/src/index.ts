/**
 * @quartet/determinism: the injected clock and seeded randomness every Quartet core uses, so
 * that the same inputs (and seed) always give the same behaviour. Test doubles live in
 * `@quartet/determinism/testing`.
 *
 * @packageDocumentation
 */
export { type Clock, systemClock } from "./clock.ts";
export { type Random, randomInt, seededRandom } from "./random.ts";
