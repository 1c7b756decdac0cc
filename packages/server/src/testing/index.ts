export { type ServiceProcess, type StartOptions, startServiceProcess } from "./service-process.ts";
