// bench/broker: the Quartet broker against nats-server 2.9 with Node clients on both sides, in
// one run, alternating sides: core pub/sub (128 B, 1 -> 1 and 1 -> 3), request-reply with 16
// concurrent requesters, and a durable work queue (JetStream work-queue stream with explicit
// acks vs a Quartet durable queue, both on normal disk) processed by 2 consumers.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { BrokerClient } from "@quartet/broker-service/client";
import { freePort, type ServiceProcess, startServiceProcess } from "@quartet/server/testing";
import { AckPolicy, connect, type NatsConnection, RetentionPolicy, StorageType } from "nats";
import { type Figure, report } from "../lib/report.ts";
import { ensureCommands } from "../lib/tools.ts";

ensureCommands({ "nats-server": "nats-server" });

const seconds = Number(process.env.BENCH_SECONDS ?? 4);
const rounds = Number(process.env.BENCH_ROUNDS ?? 2);
const TOKEN = "bench-cluster-token-0123456789";
const payload = new Uint8Array(128).fill(7);
const brokerEntry = fileURLToPath(new URL("../../services/broker/src/main.ts", import.meta.url));
const storeRoot = mkdtempSync(join(tmpdir(), "quartet-broker-bench-")); // ext4 here, not tmpfs

async function startNats(args: string[]): Promise<{ child: ChildProcess; url: string }> {
  const port = await freePort();
  const child = spawn("nats-server", ["-a", "127.0.0.1", "-p", String(port), ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      if (chunk.toString().includes("Server is ready")) resolve();
    };
    child.stderr!.on("data", onData);
    child.stdout!.on("data", onData);
    child.once("exit", (code) => reject(new Error(`nats-server exited with ${code}`)));
  });
  return { child, url: `127.0.0.1:${port}` };
}

const until = (ms: number) => {
  const end = performance.now() + ms;
  return () => performance.now() < end;
};

/** Runs `body` for `seconds`, returning delivered-or-processed messages per second. */
async function measure(
  body: (running: () => boolean, count: (n: number) => void) => Promise<void>,
): Promise<number> {
  // Warm up briefly, then measure.
  await body(until(500), () => {});
  let n = 0;
  const start = performance.now();
  await body(until(seconds * 1000), (k) => {
    n += k;
  });
  return (n * 1000) / (performance.now() - start);
}

// ---------- NATS ----------

async function natsPubSub(nc: NatsConnection[], subscribers: number): Promise<number> {
  return measure(async (running, count) => {
    const subject = `bench.ps.${Math.random().toString(36).slice(2)}`;
    const subs = nc
      .slice(1, 1 + subscribers)
      .map((c) => c.subscribe(subject, { callback: () => count(1) }));
    await Promise.all(nc.slice(1, 1 + subscribers).map((c) => c.flush()));
    const pub = nc[0]!;
    while (running()) {
      for (let i = 0; i < 1000; i++) pub.publish(subject, payload);
      await pub.flush();
    }
    await Promise.all(nc.map((c) => c.flush()));
    for (const s of subs) s.unsubscribe();
  });
}

async function natsRequestReply(nc: NatsConnection[]): Promise<number> {
  const sub = nc[1]!.subscribe("bench.rr", { callback: (_e, m) => m.respond(m.data) });
  await nc[1]!.flush();
  const rate = await measure(async (running, count) => {
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (running()) {
          await nc[0]!.request("bench.rr", payload, { timeout: 5000 });
          count(1);
        }
      }),
    );
  });
  sub.unsubscribe();
  return rate;
}

async function natsWorkQueue(nc: NatsConnection[]): Promise<number> {
  const jsm = await nc[0]!.jetstreamManager();
  const stream = `WQ${Math.random().toString(36).slice(2, 8)}`;
  await jsm.streams.add({
    name: stream,
    subjects: [`${stream}.>`],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
  });
  await jsm.consumers.add(stream, {
    durable_name: "workers",
    ack_policy: AckPolicy.Explicit,
    max_ack_pending: 4000,
  });
  const js = nc[0]!.jetstream();
  const rate = await measure(async (running, count) => {
    const stop = new AbortController();
    const consumers = await Promise.all(
      [nc[1]!, nc[2]!].map(async (c) => {
        const consumer = await c.jetstream().consumers.get(stream, "workers");
        const messages = await consumer.consume({ max_messages: 1000 });
        stop.signal.addEventListener("abort", () => void messages.close());
        // Wrapped, so Promise.all below waits for the set-up only, not the whole loop.
        return {
          loop: (async () => {
            for await (const m of messages) {
              m.ack();
              count(1);
            }
          })(),
        };
      }),
    );
    while (running()) {
      await Promise.all(Array.from({ length: 256 }, () => js.publish(`${stream}.job`, payload)));
    }
    stop.abort();
    await Promise.all(consumers.map((c) => c.loop));
  });
  await jsm.streams.delete(stream);
  return rate;
}

// ---------- Quartet ----------

async function quartetPubSub(clients: BrokerClient[], subscribers: number): Promise<number> {
  return measure(async (running, count) => {
    const subject = `bench.ps.${Math.random().toString(36).slice(2)}`;
    const subs = await Promise.all(
      clients
        .slice(1, 1 + subscribers)
        .map((c) => c.subscribe(subject, { bufferSize: 65_536, maxBatch: 10_000 })),
    );
    const reading = subs.map(async (s) => {
      for await (const batch of s.batches) count(batch.length);
    });
    const batch = Array.from({ length: 5000 }, () => ({ subject, payload }));
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (running()) await clients[0]!.publishBatch(batch);
      }),
    );
    for (const s of subs) s.close();
    await Promise.all(reading);
  });
}

async function quartetRequestReply(clients: BrokerClient[]): Promise<number> {
  const responder = await clients[1]!.subscribe("bench.rr", { maxBatch: 10_000 });
  const replies = clients[1]!.openPublisher();
  const answering = (async () => {
    for await (const batch of responder.batches) {
      void replies.publish(
        batch.filter((m) => m.replyTo).map((m) => ({ subject: m.replyTo, payload: m.payload })),
      );
    }
  })();
  const rate = await measure(async (running, count) => {
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (running()) {
          await clients[0]!.request("bench.rr", payload, { timeoutMs: 5000 });
          count(1);
        }
      }),
    );
  });
  responder.close();
  await answering;
  await replies.close();
  return rate;
}

async function quartetWorkQueue(clients: BrokerClient[]): Promise<number> {
  const queue = `wq-${Math.random().toString(36).slice(2, 8)}`;
  await clients[0]!.admin.createQueue({
    queue,
    settings: { durable: true, maxLength: 10_000_000 },
  });
  const rate = await measure(async (running, count) => {
    const stop = new AbortController();
    const consumers = [clients[1]!, clients[2]!].map(async (c) => {
      try {
        for await (const res of c.broker.receive(
          { queue, maxInFlight: 4000, maxBatch: 1000 },
          { signal: stop.signal },
        )) {
          if (res.deliveries.length === 0) continue;
          const ids = res.deliveries.map((d) => d.deliveryId);
          void c.broker.ack({ queue, deliveryIds: ids }).then(() => count(ids.length));
        }
      } catch {
        // stopped
      }
    });
    const messages = Array.from({ length: 500 }, () => ({ payload, headers: {} }));
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (running()) await clients[0]!.broker.enqueue({ queue, messages });
      }),
    );
    stop.abort();
    await Promise.all(consumers);
  });
  await clients[0]!.admin.deleteQueue({ queue });
  return rate;
}

// ---------- run ----------

const core = await startNats([]);
const jetstream = await startNats(["-js", "-sd", join(storeRoot, "jetstream")]);
const broker: ServiceProcess = await startServiceProcess(
  brokerEntry,
  ["--port", "0", "--data-dir", join(storeRoot, "quartet"), "--max-buffer-size", "1000000"],
  { env: { OTEL_TRACES_SAMPLER: "always_off", QUARTET_CLUSTER_TOKEN: TOKEN } },
);

const natsCore = await Promise.all([0, 1, 2, 3].map(() => connect({ servers: core.url })));
const natsJs = await Promise.all([0, 1, 2].map(() => connect({ servers: jetstream.url })));
// Separate connections, like the NATS side: one publisher, up to three subscribers.
const quartet = [0, 1, 2, 3].map(
  (i) => new BrokerClient({ baseUrl: broker.url, token: TOKEN, clientId: `bench-${i}` }),
);

const cases = {
  "pubsub-1to1": [() => natsPubSub(natsCore, 1), () => quartetPubSub(quartet, 1), "msgs/s"],
  "pubsub-1to3": [() => natsPubSub(natsCore, 3), () => quartetPubSub(quartet, 3), "msgs/s"],
  "request-reply-16": [
    () => natsRequestReply(natsCore),
    () => quartetRequestReply(quartet),
    "round trips/s",
  ],
  "durable-workqueue-2consumers": [
    () => natsWorkQueue(natsJs),
    () => quartetWorkQueue(quartet),
    "msgs/s",
  ],
} as const;

const figures: Record<string, Figure> = {};
const ratios: Record<string, number> = {};
try {
  const only = process.env.BENCH_ONLY; // e.g. BENCH_ONLY=request-reply while tuning
  for (const [name, [nats, ours, unit]] of Object.entries(cases)) {
    if (only && !name.includes(only)) continue;
    const n: number[] = [];
    const q: number[] = [];
    for (let r = 0; r < rounds; r++) {
      n.push(await nats());
      q.push(await ours());
      console.log(
        `  ${name} round ${r + 1}: nats ${Math.round(n.at(-1)!)}  quartet ${Math.round(q.at(-1)!)} ${unit}`,
      );
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const anchor = name.startsWith("durable") ? "jetstream" : "nats";
    figures[`${anchor}/${name}`] = { value: mean(n), unit };
    figures[`quartet/${name}`] = { value: mean(q), unit };
    ratios[`quartet_vs_${anchor}/${name}`] = mean(q) / mean(n);
  }
} finally {
  await Promise.all([...natsCore, ...natsJs].map((c) => c.close()));
  core.child.kill("SIGTERM");
  jetstream.child.kill("SIGTERM");
  await broker.kill("SIGTERM");
  rmSync(storeRoot, { recursive: true, force: true });
}

report("broker", figures, ratios, [
  `${seconds}s x ${rounds} rounds per side, alternating; 128-byte payloads; Node clients on both sides, all in one process`,
  "pub/sub counts messages delivered to subscribers (1 -> 3 counts each copy); Quartet publishes with PublishBatch (5000 per call, 4 in flight)",
  "request-reply: 16 concurrent requesters, one responder; Quartet sends concurrent requests in batches on one RequestStream and replies on one PublishStream",
  "durable work queue: 1 producer + 2 consumers with explicit acks at the same time; Quartet fsyncs every Enqueue and Ack before answering (LMDB group commit); JetStream is at its default sync policy",
  `target ratios: pub/sub and request-reply >= 0.5, durable work queue >= 1.0`,
]);
process.exit(0);
