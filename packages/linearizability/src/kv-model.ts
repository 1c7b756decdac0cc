import type { Model, Operation } from "./model.ts";

/** A key-value store's operations, each on one key; `null` is "no such key". */
export type KvInput =
  | { kind: "get"; key: string }
  | { kind: "put"; key: string; value: string }
  | { kind: "delete"; key: string }
  /** Writes `value` only if the key holds `expected` (etcd: a Txn comparing the value). */
  | { kind: "cas"; key: string; expected: string | null; value: string };

export type KvOutput =
  | { kind: "get"; value: string | null }
  | { kind: "put" }
  | { kind: "delete" }
  | { kind: "cas"; succeeded: boolean }
  /** The call's answer never came: it may or may not have taken effect. */
  | { kind: "unknown" };

type Register = string | null;

/**
 * A map of independent registers: the history is split per key and each key is checked as
 * one register, which is what makes histories of thousands of operations checkable.
 */
export const kvModel: Model<Register, KvInput, KvOutput> = {
  init: () => null,
  step(state, input, output) {
    const unknown = output.kind === "unknown";
    switch (input.kind) {
      case "get":
        if (unknown) return [state];
        return output.kind === "get" && output.value === state ? [state] : [];
      case "put":
        return unknown || output.kind === "put" ? [input.value] : [];
      case "delete":
        return unknown || output.kind === "delete" ? [null] : [];
      case "cas": {
        const matches = state === input.expected;
        if (unknown) return matches ? [input.value, state] : [state];
        if (output.kind !== "cas" || output.succeeded !== matches) return [];
        return [matches ? input.value : state];
      }
    }
  },
  key: (state) => (state === null ? "" : `=${state}`),
  partition(history) {
    const byKey = new Map<string, Operation<KvInput, KvOutput>[]>();
    for (const op of history) {
      const ops = byKey.get(op.input.key);
      if (ops) ops.push(op);
      else byKey.set(op.input.key, [op]);
    }
    return [...byKey.values()];
  },
  describe(op) {
    const i = op.input;
    const what =
      i.kind === "get"
        ? `get(${i.key})`
        : i.kind === "put"
          ? `put(${i.key}, ${i.value})`
          : i.kind === "delete"
            ? `delete(${i.key})`
            : `cas(${i.key}, ${i.expected} -> ${i.value})`;
    return `client ${op.clientId}: ${what} -> ${JSON.stringify(op.output)} [${op.call}, ${op.return}]`;
  },
};
