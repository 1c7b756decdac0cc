export type { ConnectRegistry, RegistryClient, RegistryMember } from "./client.ts";
export {
  encodeInstance,
  type Instance,
  instanceKey,
  parseInstance,
  prefixEnd,
  registryPrefix,
  servicePrefix,
} from "./instance.ts";
export {
  type RegisterOptions,
  type Registration,
  type RegistryLogger,
  register,
} from "./register.ts";
export {
  endpointsOf,
  type RegistryResolver,
  type RegistryResolverOptions,
  registryResolver,
} from "./resolver.ts";
export {
  advertisedUrl,
  closeOnSignals,
  consensusUrls,
  type RegisterServerOptions,
  type RegistryConfig,
  registerServer,
  registrySettings,
  servedServices,
} from "./service.ts";
export {
  type Registered,
  type RegistryWatch,
  type RegistryWatchOptions,
  watchRegistry,
} from "./watch.ts";
