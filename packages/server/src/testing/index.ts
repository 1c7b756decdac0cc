export { freePort, portFree } from "./free-port.ts";
export { type ServiceProcess, type StartOptions, startServiceProcess } from "./service-process.ts";
