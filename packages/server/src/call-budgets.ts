import * as reflectionV1 from "@quartet/proto/grpc/reflection/v1/reflection_pb";
import * as reflectionV1alpha from "@quartet/proto/grpc/reflection/v1alpha/reflection_pb";
import { Health } from "@quartet/proto/health/v1/health_pb";
import type { CallAdmission } from "@quartet/telemetry";
import { createConcurrencyLimit } from "./limits.ts";

/**
 * Calls in progress at once to health and reflection, apart from the application's limit:
 * enough for every probe and tool, small enough that they cannot hold the server up.
 */
export const maxOperationalCalls = 64;

/** Health and reflection procedures, as `package.Service/Method`. */
export const operationalProcedures: ReadonlySet<string> = new Set(
  [Health, reflectionV1.ServerReflection, reflectionV1alpha.ServerReflection].flatMap((service) =>
    service.methods.map((method) => `${service.typeName}/${method.name}`),
  ),
);

/**
 * The server's call admission: application calls share `maxConcurrentCalls`; health and
 * reflection have their own small budget, so a server full of slow application calls still
 * answers its health checks (a load balancer would otherwise take it out of rotation,
 * making the overload worse) and can still be inspected.
 */
export function createCallBudgets(maxConcurrentCalls: number): CallAdmission {
  const application = createConcurrencyLimit(maxConcurrentCalls);
  const operational = createConcurrencyLimit(maxOperationalCalls);
  // One Set lookup per call: no allocation on the hot path.
  return {
    admit(procedure) {
      (operationalProcedures.has(procedure) ? operational : application).admit(procedure);
    },
    release(procedure) {
      (operationalProcedures.has(procedure) ? operational : application).release(procedure);
    },
  };
}
