import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createBalancedTransport, type EndpointAddress, type Resolver } from "@quartet/balancer";
import { Event_EventType } from "@quartet/proto/quartet/consensus/v1/watch_pb";
import { WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { parseConfig, type Server, serve } from "@quartet/server";
import { startServiceProcess } from "@quartet/server/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  instanceKey,
  parseInstance,
  prefixEnd,
  type RegistryClient,
  register,
  registryResolver,
  registrySettings,
  servicePrefix,
  watchRegistry,
} from "../src/index.ts";
import { Cluster } from "../src/testing.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const childEntry = fileURLToPath(new URL("./fixtures/register-child.ts", import.meta.url));

/** Resolves with the first list the resolver delivers that `match` accepts. */
function listWhere(
  resolver: Resolver,
  match: (list: readonly EndpointAddress[]) => boolean,
): Promise<readonly EndpointAddress[]> {
  return new Promise((resolve) => {
    let done = false;
    let stop: (() => void) | undefined;
    stop = resolver.subscribe((list) => {
      if (done || !match(list)) return;
      done = true;
      resolve(list);
      stop?.();
    });
    if (done) stop();
  });
}

let cluster: Cluster;
let client: RegistryClient;

beforeAll(async () => {
  cluster = await Cluster.start();
  client = cluster.client();
});

const servers: Server[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await cluster?.stop();
});

describe("register", () => {
  it("puts one key per service, each describing the endpoint, under one lease", async () => {
    const registration = register({
      client,
      services: ["test.v1.Alpha", "test.v1.Beta"],
      address: "http://127.0.0.1:9001",
      zone: "eu-1",
      weight: 3,
      instanceId: "alpha-1",
      version: "1.2.3",
      ttlSeconds: 5,
    });
    await registration.ready;
    const res = await client.range({ key: enc(instanceKey("test.v1.Alpha", "alpha-1")) });
    expect(res.kvs).toHaveLength(1);
    expect(res.kvs[0]!.lease).toBe(registration.leaseId());
    expect(parseInstance(res.kvs[0]!.value)).toEqual({
      service: "test.v1.Alpha",
      instanceId: "alpha-1",
      address: "http://127.0.0.1:9001",
      protocols: ["connect", "grpc", "grpc-web"],
      zone: "eu-1",
      weight: 3,
      version: "1.2.3",
    });
    const beta = await client.range({ key: enc("/registry/test.v1.Beta/alpha-1") });
    expect(beta.kvs[0]!.lease).toBe(registration.leaseId());
    await registration.close();
  });

  it("close() revokes the lease: every key of the instance is deleted and resolvers drop it", async () => {
    const resolver = registryResolver({ client, service: "test.v1.Closing" });
    const registration = register({
      client,
      services: ["test.v1.Closing"],
      address: "http://127.0.0.1:9002",
      ttlSeconds: 60,
    });
    expect(await listWhere(resolver, (l) => l.length === 1)).toEqual([
      { id: "http://127.0.0.1:9002", address: "http://127.0.0.1:9002", weight: 1 },
    ]);
    // A TTL of 60 s: the key can only be gone this soon because close() revoked the lease.
    const gone = listWhere(resolver, (l) => l.length === 0);
    await registration.close();
    await gone;
    const res = await client.range({
      key: enc(servicePrefix("test.v1.Closing")),
      rangeEnd: prefixEnd(enc(servicePrefix("test.v1.Closing"))),
    });
    expect(res.kvs).toHaveLength(0);
    resolver.close();
  });

  it("registers again with a new lease when its lease is lost", async () => {
    const resolver = registryResolver({ client, service: "test.v1.Lost" });
    const registration = register({
      client,
      services: ["test.v1.Lost"],
      address: "http://127.0.0.1:9003",
      ttlSeconds: 2,
      retryMs: 50,
    });
    await registration.ready;
    const first = registration.leaseId();
    await listWhere(resolver, (l) => l.length === 1);
    // The cluster loses the lease (as after a partition longer than the TTL).
    const dropped = listWhere(resolver, (l) => l.length === 0);
    await client.retrying((m) => m.lease.leaseRevoke({ id: first }));
    await dropped;
    // The next renewal finds the lease gone; the instance registers again.
    expect(await listWhere(resolver, (l) => l.length === 1)).toHaveLength(1);
    expect(registration.leaseId()).not.toBe(first);
    await registration.close();
    resolver.close();
  });

  it("a killed instance's keys are deleted when its lease expires", async () => {
    const child = await startServiceProcess(
      childEntry,
      [cluster.urls.join(","), "http://127.0.0.1:9004", "2"],
      { env: { OTEL_SDK_DISABLED: "true" } },
    );
    const key = enc(servicePrefix("test.v1.Killed"));
    const before = await client.range({ key, rangeEnd: prefixEnd(key) });
    expect(before.kvs).toHaveLength(1);
    await child.kill("SIGKILL");
    // The deletion arrives as a watch event from after the read: nothing renews the lease.
    // (A PUT may come first: on a loaded machine a renewal can miss the TTL before the kill.)
    for await (const event of client.watch({
      key,
      rangeEnd: prefixEnd(key),
      startRevision: before.header!.revision + 1n,
    })) {
      if (event.type === Event_EventType.DELETE) break;
    }
    expect((await client.range({ key, rangeEnd: prefixEnd(key) })).kvs).toHaveLength(0);
  });
});

describe("watchRegistry", () => {
  it("reads what is registered, then follows changes, across services", async () => {
    const seen: string[][] = [];
    const a = register({ client, services: ["test.v1.W1"], address: "http://127.0.0.1:9011" });
    await a.ready;
    let onAddress: (() => void) | undefined;
    const second = new Promise<void>((resolve) => {
      onAddress = resolve;
    });
    const watch = watchRegistry({
      client,
      onChange: (instances) => {
        const list = instances
          .filter((i) => i.service.startsWith("test.v1.W"))
          .map((i) => `${i.service} ${i.address}`);
        seen.push(list.sort());
        if (list.length === 2) onAddress?.();
      },
    });
    await watch.ready;
    expect(seen[0]).toEqual(["test.v1.W1 http://127.0.0.1:9011"]);
    const b = register({ client, services: ["test.v1.W2"], address: "http://127.0.0.1:9012" });
    await second;
    expect(seen.at(-1)).toEqual([
      "test.v1.W1 http://127.0.0.1:9011",
      "test.v1.W2 http://127.0.0.1:9012",
    ]);
    watch.close();
    await Promise.all([a.close(), b.close()]);
  });
});

describe("registrySettings", () => {
  const spec = { name: "t", summary: "t", settings: registrySettings };

  it("takes the consensus URLs, TTL, zone and weight from flags", () => {
    const config = parseConfig(
      spec,
      [
        "--registry",
        "http://127.0.0.1:7001, http://127.0.0.1:7002",
        "--registry-ttl-s",
        "3",
        "--zone",
        "z",
        "--weight",
        "2",
      ],
      {},
    );
    expect(config).toMatchObject({
      registry: ["http://127.0.0.1:7001", "http://127.0.0.1:7002"],
      registryTtlS: 3,
      zone: "z",
      weight: 2,
    });
    expect(parseConfig(spec, [], {})).toMatchObject({
      registry: undefined,
      registryTtlS: 10,
      weight: 1,
    });
  });

  it("says what is wrong with a bad consensus URL or TTL", () => {
    expect(() => parseConfig(spec, ["--registry", "127.0.0.1:7001"], {})).toThrow(
      /--registry.*http:\/\/127\.0\.0\.1:7001/,
    );
    expect(() => parseConfig(spec, ["--registry-ttl-s", "0"], {})).toThrow(/--registry-ttl-s/);
  });
});

/** A WorkerService whose Compute answers with `id`; a Compute with input "hold" waits for `release`. */
async function backend(id: string, release?: Promise<void>) {
  let held: () => void = () => {};
  const holding = new Promise<void>((resolve) => {
    held = resolve;
  });
  const server = await serve({
    name: id,
    routes: (router) =>
      router.service(WorkerService, {
        async compute(req) {
          if (req.input === "hold") {
            held();
            await release;
          }
          return { workerId: id };
        },
      }),
  });
  servers.push(server);
  return { server, holding };
}

/** Resolves once the resolver delivers a list of `n` endpoints. */
function listOf(resolver: Resolver, n: number): Promise<void> {
  return new Promise((resolve) => {
    const stop = resolver.subscribe((list) => {
      if (list.length !== n) return;
      resolve();
      queueMicrotask(() => stop());
    });
  });
}

describe("registryResolver with the balancing transport", () => {
  it("follows the registry: new instances get calls, a deregistered one gets none while its running call finishes", async () => {
    const service = WorkerService.typeName;
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const a = await backend("a", released);
    const b = await backend("b");
    const resolver = registryResolver({ client, service });
    const transport = createBalancedTransport({ resolver, healthCheck: false });
    const worker = createClient(WorkerService, transport);

    const regA = register({
      client,
      services: [service],
      address: a.server.url,
      instanceId: "a",
      ttlSeconds: 30,
    });
    await listOf(resolver, 1);
    expect((await worker.compute({})).workerId).toBe("a");

    const regB = register({
      client,
      services: [service],
      address: b.server.url,
      instanceId: "b",
      ttlSeconds: 30,
    });
    await listOf(resolver, 2);
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) seen.add((await worker.compute({})).workerId);
    expect([...seen].sort()).toEqual(["a", "b"]);

    // A call running on a when a deregisters finishes there; new calls go to b only.
    let running: Promise<{ workerId: string }> | undefined;
    for (let i = 0; i < 4 && !running; i++) {
      const call = worker.compute({ input: "hold" });
      const first = await Promise.race([a.holding.then(() => "a" as const), call.then(() => "b")]);
      if (first === "a") running = call;
    }
    expect(running).toBeDefined();
    const gone = listOf(resolver, 1);
    await regA.close();
    await gone;
    for (let i = 0; i < 6; i++) expect((await worker.compute({})).workerId).toBe("b");
    release();
    expect((await running!).workerId).toBe("a");

    await regB.close();
    resolver.close();
    await transport.close();
  });
});
