export { type CallContext, currentCall } from "./call-context.ts";
export {
  type CallContextOptions,
  DEFAULT_MARGIN_MS,
  withCallContext,
} from "./call-context-transport.ts";
export { createClientInterceptors } from "./client-interceptor.ts";
export { logMixin } from "./log-mixin.ts";
export { extractMessageContext, injectMessageHeaders } from "./messaging.ts";
export {
  type CallAdmission,
  createServerInterceptors,
  type ServerInterceptorOptions,
} from "./server-interceptor.ts";
export { startTelemetry, type Telemetry, type TelemetryOptions } from "./start.ts";
export { createTelemetryTransport, type TelemetryTransportOptions } from "./telemetry-transport.ts";
