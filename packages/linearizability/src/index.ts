export { type CheckOptions, type CheckResult, checkOperations } from "./check.ts";
export { type KvInput, type KvOutput, kvModel } from "./kv-model.ts";
export type { Model, Operation } from "./model.ts";
export { HistoryRecorder, type RecorderOptions } from "./recorder.ts";
export { describeFailure } from "./report.ts";
