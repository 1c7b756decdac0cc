import { Code, ConnectError } from "@connectrpc/connect";
import { type WatchResponse, WatchService } from "@quartet/proto/quartet/consensus/v1/watch_pb";
import { afterEach, describe, expect, it } from "vitest";
import { ConsensusClient } from "../src/client.ts";
import { clusterToken, dec, enc, eventually, TestCluster } from "./support/cluster.ts";

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

describe("watch", () => {
  it("delivers every event once, in revision order, across the leader's death (the client resumes)", async () => {
    cluster = await TestCluster.start();
    const c = cluster;
    const url = (id: number) => `http://127.0.0.1:${c.ports.get(id)}`;
    const probe = new ConsensusClient({ endpoints: c.ids.map(url) });
    let leader = 0;
    let from = 0n;
    while (leader === 0) {
      try {
        const r = await probe.kv.put({ key: enc("probe"), value: enc("") }, { timeoutMs: 2000 });
        leader = Number(r.header?.memberId);
        from = r.header!.revision + 1n;
      } catch {}
    }
    // The watcher starts on the leader, which is about to die.
    const watcher = new ConsensusClient({
      endpoints: [leader, ...c.ids.filter((id) => id !== leader)].map(url),
    });
    const stop = new AbortController();
    const seen: { key: string; rev: bigint }[] = [];
    let seenMax = 0n;
    let progressed: (() => void) | undefined;
    const watching = (async () => {
      // From the revision after the probe: the writes below may start before the watch is live.
      const req = { key: enc("w/"), rangeEnd: enc("w0"), startRevision: from };
      for await (const e of watcher.watch(req, stop.signal)) {
        seen.push({ key: dec(e.kv!.key), rev: e.kv!.modRevision });
        seenMax = e.kv!.modRevision;
        progressed?.();
      }
    })();
    const writer = new ConsensusClient({ endpoints: c.ids.filter((id) => id !== leader).map(url) });
    const write = async (n: number) => {
      for (;;) {
        try {
          return await writer.kv.put(
            { key: enc(`w/${n}`), value: enc(String(n)) },
            { timeoutMs: 2000 },
          );
        } catch {}
      }
    };
    // A write retried after a lost answer may land twice: every acknowledged one must be seen.
    const acked: { key: string; rev: bigint }[] = [];
    let lastRev = 0n;
    const record = async (n: number) => {
      lastRev = (await write(n)).header!.revision;
      acked.push({ key: `w/${n}`, rev: lastRev });
    };
    for (let n = 0; n < 30; n++) await record(n);
    while (seenMax < lastRev) await new Promise<void>((r) => (progressed = r));
    await c.kill(leader);
    for (let n = 30; n < 60; n++) await record(n);
    while (seenMax < lastRev) await new Promise<void>((r) => (progressed = r));
    stop.abort();
    await watching;

    // In revision order, each once, nothing acknowledged missing.
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.rev).toBeGreaterThan(seen[i - 1]!.rev);
    const byRev = new Map(seen.map((e) => [e.rev, e.key]));
    for (const a of acked) expect(byRev.get(a.rev), `event of ${a.key} at ${a.rev}`).toBe(a.key);
  }, 90_000);

  it("refuses a watch from a compacted revision with OutOfRange", async () => {
    cluster = await TestCluster.start();
    const c = cluster;
    const client = new ConsensusClient({
      endpoints: c.ids.map((id) => `http://127.0.0.1:${c.ports.get(id)}`),
    });
    let rev = 0n;
    for (let n = 0; n < 5; n++) {
      for (;;) {
        try {
          rev = (await client.kv.put({ key: enc("k"), value: enc(String(n)) }, { timeoutMs: 2000 }))
            .header!.revision;
          break;
        } catch {}
      }
    }
    await client.kv.compact({ revision: rev });
    const stream = client.watch({ key: enc("k"), startRevision: 1n });
    await expect(stream.next()).rejects.toMatchObject({ code: 11 });
  }, 60_000);

  it("refuses a client's watch past --max-watches-per-client with ResourceExhausted, changing nothing", async () => {
    cluster = await TestCluster.start(1, ["--max-watches-per-client", "2"]);
    const c = cluster;
    const watch = c.client(WatchService, 1);
    // Opens a watch on "w" and waits for its first response (the watch is live).
    const open = async (headers: Record<string, string> = {}) => {
      const stop = new AbortController();
      const stream = watch
        .watch({ key: enc("w") }, { signal: stop.signal, headers })
        [Symbol.asyncIterator]();
      await stream.next();
      return { stream, stop };
    };
    const refused = (headers: Record<string, string> = {}) =>
      open(headers).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
    const first = await eventually(() => open()); // the member may still be electing itself
    const second = await open();
    const third = await refused();
    expect(third?.code).toBe(Code.ResourceExhausted);
    expect(third?.rawMessage).toMatch(
      /client at 127\.0\.0\.1 already has 2 watches open.*--max-watches-per-client/,
    );
    // The header names a client only for a caller with the cluster credential.
    expect((await refused({ "quartet-client-id": "someone-else" }))?.code).toBe(
      Code.ResourceExhausted,
    );
    const trusted = await open({
      authorization: `Bearer ${clusterToken}`,
      "quartet-client-id": "gateway-client-7",
    });

    // The open watches still deliver.
    await eventually(() => c.kv(1).put({ key: enc("w"), value: enc("x") }, { timeoutMs: 2000 }));
    for (const w of [first, second, trusted]) {
      const next = await w.stream.next();
      const events = (next.value as WatchResponse).events;
      expect(events.map((e) => dec(e.kv!.value))).toEqual(["x"]);
    }
    // An ended watch gives its place back (once the member has seen it end).
    first.stop.abort();
    const again = await eventually(() => open());
    again.stop.abort();
    second.stop.abort();
    trusted.stop.abort();
  }, 30_000);
});
