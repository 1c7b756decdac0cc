import { Code } from "@connectrpc/connect";
import type { Command } from "@quartet/proto/quartet/consensus/v1/internal_pb";
import { kvText, type PlainKv } from "./summary.ts";

const dec = new TextDecoder();
const text = (u: Uint8Array) => dec.decode(u);

/**
 * The sequential reference for the simulator runs: the obvious, slow implementation of the
 * same semantics. It keeps a full copy of the keyspace for every revision, so reads at a past
 * revision are a lookup, and compaction only moves the floor. Handles the commands the
 * simulator's clients issue (prev_kv puts, ranges as in etcd, CAS transactions on
 * mod_revision, leases), and summarizes each result like summarize().
 */
export class ReferenceModel {
  /** states[r]: every live key at revision r. */
  readonly states: Map<string, PlainKv>[] = [new Map()];
  compacted = 0;
  private readonly leases = new Map<number, { ttl: number; deadline: number }>();
  private nextLeaseId = 1;

  get revision(): number {
    return this.states.length - 1;
  }

  apply(cmd: Command): string {
    const now = Number(cmd.nowMs);
    const op = cmd.op;
    switch (op.case) {
      case "put": {
        const { key, value, lease } = op.value;
        if (lease !== 0n && !this.leases.has(Number(lease))) return this.error(Code.NotFound);
        const next = this.fork();
        const prev = this.putInto(next, text(key), text(value), Number(lease));
        this.states.push(next);
        return `put r${this.revision} prev=${kvText(op.value.prevKv ? prev : undefined)}`;
      }
      case "deleteRange": {
        const gone = this.matching(text(op.value.key), text(op.value.rangeEnd));
        if (gone.length > 0) {
          const next = this.fork();
          for (const kv of gone) next.delete(kv.key);
          this.states.push(next);
        }
        const prev = op.value.prevKv ? gone.map(kvText) : [];
        return `del r${this.revision} n=${gone.length} prev=[${prev}]`;
      }
      case "txn": {
        // Only compare-and-swap on mod_revision: success puts, failure reads.
        const c = op.value.compare[0]!;
        const key = text(c.key);
        const cur = this.states[this.revision]!.get(key);
        const ok = BigInt(cur?.mod ?? 0) === c.targetUnion.value;
        const branch = ok ? op.value.success : op.value.failure;
        for (const o of branch)
          if (o.request.case === "requestPut" && o.request.value.lease !== 0n)
            if (!this.leases.has(Number(o.request.value.lease))) return this.error(Code.NotFound);
        const results: string[] = [];
        let next: Map<string, PlainKv> | undefined;
        for (const o of branch) {
          const r = o.request;
          if (r.case === "requestPut") {
            next ??= this.fork();
            const prev = this.putInto(
              next,
              text(r.value.key),
              text(r.value.value),
              Number(r.value.lease),
              this.revision + 1,
            );
            results.push(`put prev=${kvText(r.value.prevKv ? prev : undefined)}`);
          } else if (r.case === "requestRange") {
            const kvs = this.matching(text(r.value.key), text(r.value.rangeEnd), next);
            results.push(`range [${kvs.map(kvText)}]`);
          }
        }
        if (next !== undefined) this.states.push(next);
        return `txn r${this.revision} ${ok} [${results.join(" ")}]`;
      }
      case "compact": {
        const rev = Number(op.value.revision);
        if (rev <= this.compacted || rev > this.revision) return this.error(Code.OutOfRange);
        this.compacted = rev;
        return `compact r${this.revision}`;
      }
      case "leaseGrant": {
        let id = Number(op.value.id);
        if (id === 0) {
          while (this.leases.has(this.nextLeaseId)) this.nextLeaseId++;
          id = this.nextLeaseId++;
        } else if (this.leases.has(id)) return this.error(Code.AlreadyExists);
        const ttl = Number(op.value.ttl);
        this.leases.set(id, { ttl, deadline: now + ttl * 1000 });
        return `grant r${this.revision} ${id}/${ttl}`;
      }
      case "leaseRevoke": {
        const id = Number(op.value.id);
        if (!this.leases.has(id)) return this.error(Code.NotFound);
        this.revoke(id);
        return `revoke r${this.revision}`;
      }
      case "leaseRenew": {
        const id = Number(op.value.id);
        const l = this.leases.get(id);
        if (l === undefined) return this.error(Code.NotFound);
        l.deadline = now + l.ttl * 1000;
        return `renew r${this.revision} ${id}/${l.ttl}`;
      }
      case "expireLeases": {
        const due = [...this.leases].filter(([, l]) => l.deadline <= now).map(([id]) => id);
        due.sort((a, b) => a - b);
        for (const id of due) this.revoke(id);
        return `expire r${this.revision} [${due}]`;
      }
      case "promoteLeases": {
        for (const l of this.leases.values()) l.deadline = now + l.ttl * 1000;
        return `promote r${this.revision} ${this.leases.size}`;
      }
      default:
        throw new Error("reference model: unexpected command");
    }
  }

  /** The live keys in etcd's range [key, end) at the latest state (or `state`). */
  matching(key: string, end: string, state = this.states[this.revision]!): PlainKv[] {
    const keys = [...state.keys()].filter((k) =>
      end === "" ? k === key : k >= key && (end === "\0" || k < end),
    );
    return keys.sort().map((k) => state.get(k)!);
  }

  private revoke(id: number): void {
    const attached = [...this.states[this.revision]!.values()].filter((kv) => kv.lease === id);
    if (attached.length > 0) {
      const next = this.fork();
      for (const kv of attached) next.delete(kv.key);
      this.states.push(next);
    }
    this.leases.delete(id);
  }

  private putInto(
    next: Map<string, PlainKv>,
    key: string,
    value: string,
    lease: number,
    rev = this.revision + 1,
  ): PlainKv | undefined {
    const prev = next.get(key);
    next.set(key, {
      key,
      value,
      lease,
      mod: rev,
      create: prev?.create ?? rev,
      version: (prev?.version ?? 0) + 1,
    });
    return prev;
  }

  private fork(): Map<string, PlainKv> {
    return new Map(this.states[this.revision]!);
  }

  private error(code: Code): string {
    return `error ${code} r${this.revision}`;
  }
}
