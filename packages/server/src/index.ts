export { type AuthOptions, createAuthGate } from "./auth.ts";
export { endCallWithError } from "./call-error.ts";
export { ChangeWaiter } from "./change-waiter.ts";
export { forgetClosedStream } from "./closed-stream.ts";
export {
  ClusterTokenError,
  type ClusterTokenSources,
  loadClusterToken,
  readClusterToken,
} from "./cluster-token.ts";
export {
  ConfigError,
  type ConfigOf,
  type ConfigSpec,
  loadConfig,
  parseConfig,
  type Setting,
  type Settings,
  serverSettings,
} from "./config.ts";
export { type AllowedOrigins, createCors, localhostOrigins } from "./cors.ts";
export { HealthRegistry, ServingStatus } from "./health.ts";
export { createConcurrencyLimit, defaultLimits, type Limits } from "./limits.ts";
export type { NodeHandler, TlsOptions } from "./listener.ts";
export { LiveSet } from "./live-set.ts";
export { createLogger, type Logger } from "./logger.ts";
export { registerReflection } from "./reflection.ts";
export {
  type ServeOptions,
  type Server,
  serve,
  serveOptionsFrom,
  serverInterceptors,
} from "./serve.ts";
export { TokenBucket } from "./token-bucket.ts";
