import { fileURLToPath } from "node:url";
import {
  type ServiceProcess,
  type StartOptions,
  startServiceProcess,
} from "@quartet/server/testing";

const workerEntry = fileURLToPath(new URL("../../worker/src/main.ts", import.meta.url));
export const gatewayEntry = fileURLToPath(new URL("../src/main.ts", import.meta.url));

/** A real worker process on a free loopback port. */
export function startWorker(
  id: string,
  args: string[] = [],
  options: StartOptions = {},
): Promise<ServiceProcess> {
  return startServiceProcess(workerEntry, ["--port", "0", "--id", id, ...args], options);
}

/** A real gateway process on a free loopback port. */
export function startGateway(args: string[], options: StartOptions = {}): Promise<ServiceProcess> {
  return startServiceProcess(gatewayEntry, ["--port", "0", ...args], options);
}

const brokerEntry = fileURLToPath(new URL("../../broker/src/main.ts", import.meta.url));

/** A real broker process (in-memory) on a free loopback port. */
export function startBroker(): Promise<ServiceProcess> {
  return startServiceProcess(brokerEntry, ["--port", "0"], {
    env: { QUARTET_CLUSTER_TOKEN: "streaming-test-token-0123456789" },
  });
}
