import { setTimeout } from "node:timers/promises";
import { ConnectError } from "@connectrpc/connect";
import { Event_EventType } from "@quartet/proto/quartet/consensus/v1/watch_pb";
import type { RegistryClient } from "./client.ts";
import { type Instance, parseInstance, prefixEnd, servicePrefix } from "./instance.ts";

/** One registered instance as the watch last saw it. */
export interface Registered extends Instance {
  /** Revision of the key's last write: among duplicates of one address, the newest wins. */
  modRevision: bigint;
}

export interface RegistryWatchOptions {
  client: RegistryClient;
  /** Watch one service's instances; all services when omitted. */
  service?: string;
  /** The complete current list, after the first read and after every change. */
  onChange: (instances: readonly Registered[]) => void;
  /** A read or watch failed; the watcher reads again after a pause (default: ignored). */
  onError?: (error: ConnectError) => void;
  /** Pause before reading again after a failure, ms (default 500). */
  retryMs?: number;
}

export interface RegistryWatch {
  /** Resolves after the first complete read has been delivered. */
  readonly ready: Promise<void>;
  close(): void;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Keeps a live copy of the registry (or one service's part): a Range first, then a watch
 * from the revision after it, so no change between the two is missed. The consensus client
 * resumes a broken watch from the last revision it delivered; when that is no longer
 * possible (compacted, or the cluster unreachable for long), this reads everything again.
 */
export function watchRegistry(options: RegistryWatchOptions): RegistryWatch {
  const { client, onChange } = options;
  const key = encoder.encode(servicePrefix(options.service));
  const rangeEnd = prefixEnd(key);
  const stop = new AbortController();
  const byKey = new Map<string, Registered>();
  let markReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    markReady = resolve;
  });
  const emit = () => onChange([...byKey.values()]);

  async function run(): Promise<void> {
    while (!stop.signal.aborted) {
      try {
        const res = await client.range({ key, rangeEnd }, stop.signal);
        byKey.clear();
        for (const kv of res.kvs) {
          const instance = parseInstance(kv.value);
          if (instance)
            byKey.set(decoder.decode(kv.key), { ...instance, modRevision: kv.modRevision });
        }
        emit();
        markReady();
        const startRevision = (res.header?.revision ?? 0n) + 1n;
        for await (const event of client.watch({ key, rangeEnd, startRevision }, stop.signal)) {
          const name = decoder.decode(event.kv?.key ?? new Uint8Array());
          const instance =
            event.type === Event_EventType.PUT && event.kv
              ? parseInstance(event.kv.value)
              : undefined;
          if (instance) byKey.set(name, { ...instance, modRevision: event.kv!.modRevision });
          else if (!byKey.delete(name)) continue;
          emit();
        }
      } catch (e) {
        if (stop.signal.aborted) return;
        options.onError?.(ConnectError.from(e));
        await setTimeout(options.retryMs ?? 500, undefined, { signal: stop.signal }).catch(
          () => {},
        );
      }
    }
  }
  void run();
  return {
    ready,
    close: () => stop.abort(),
  };
}
