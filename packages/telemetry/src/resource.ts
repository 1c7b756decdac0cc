import { randomUUID } from "node:crypto";
import {
  envDetector,
  hostDetector,
  processDetector,
  type ResourceDetector,
} from "@opentelemetry/resources";

// The command line can carry secrets (a token given as a flag), and the resource is published
// on the unauthenticated /metrics (target_info) and on every exported span.
const commandLineAttributes = ["process.command_args", "process.command_line"];

/** The SDK's process detector without the command line: pid, runtime, executable, owner. */
const processWithoutCommandLine: ResourceDetector = {
  detect(config) {
    const detected = processDetector.detect(config);
    const attributes = { ...detected.attributes };
    for (const key of commandLineAttributes) delete attributes[key];
    return { ...detected, attributes };
  },
};

/**
 * What the resource is detected from, in place of the SDK's defaults (and of
 * OTEL_NODE_RESOURCE_DETECTORS, which could bring the command line back).
 * OTEL_RESOURCE_ATTRIBUTES (envDetector) comes last, so it overrides the others.
 */
export const resourceDetectors: ResourceDetector[] = [
  processWithoutCommandLine,
  hostDetector,
  envDetector,
];

/**
 * `service.instance.id` for this process: a random UUID, so that two instances of a service
 * are told apart in traces. Detected attributes are merged over it, so
 * OTEL_RESOURCE_ATTRIBUTES=service.instance.id=... still wins.
 */
export function instanceAttributes(): { "service.instance.id": string } {
  return { "service.instance.id": randomUUID() };
}
