import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { DescService } from "@bufbuild/protobuf";
import { type Client, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { KVService } from "@quartet/proto/quartet/consensus/v1/kv_pb";
import { freePort, type ServiceProcess, startServiceProcess } from "@quartet/server/testing";
import { LinkProxy } from "./link-proxy.ts";

const mainTs = fileURLToPath(new URL("../../src/main.ts", import.meta.url));
export const clusterToken = "consensus-test-token-0123456789";
/** Call options that carry the cluster credential (admin, membership, faults, observation). */
export const clusterAuth = { headers: { authorization: `Bearer ${clusterToken}` } };

export const enc = (s: string) => new TextEncoder().encode(s);
export const dec = (b: Uint8Array) => new TextDecoder().decode(b);

/**
 * Retries `fn` until it succeeds, a bounded number of times: a cluster that is electing a
 * leader answers Unavailable (after waiting within the call's deadline) meanwhile.
 */
export async function eventually<T>(fn: () => Promise<T>, attempts = 300): Promise<T> {
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      return await fn();
    } catch (e) {
      last = e;
    }
  }
  throw last;
}

/** The error `call` ends with; throws if it succeeds, where a refusal was expected. */
export async function refusal(call: Promise<unknown>): Promise<ConnectError> {
  return call.then(
    () => {
      throw new Error("the call succeeded; a refusal was expected");
    },
    (e: unknown) => ConnectError.from(e),
  );
}

/**
 * A cluster of real member processes on loopback, each member reaching each other one
 * through its own LinkProxy, so a test can cut and heal any link, and kill (SIGKILL) and
 * restart any member on its data directory.
 */
export class TestCluster {
  /** The members this cluster has started (founders, then members that joined). */
  readonly ids: number[];
  readonly ports = new Map<number, number>();
  /** `${from}>${to}`: the proxy `from` reaches `to` through. */
  readonly links = new Map<string, LinkProxy>();
  readonly members = new Map<number, ServiceProcess>();
  readonly dataDir: string;
  private readonly clients = new Map<number, Client<typeof KVService>>();
  private readonly extraArgs: string[];
  private readonly env: Record<string, string>;
  /** Members reach each other on their own ports, not through link proxies (no partitions). */
  private readonly directLinks: boolean;

  private constructor(
    ids: number[],
    extraArgs: string[],
    env: Record<string, string>,
    directLinks: boolean,
  ) {
    this.ids = ids;
    this.extraArgs = extraArgs;
    this.env = env;
    this.directLinks = directLinks;
    this.dataDir = mkdtempSync(join(tmpdir(), "quartet-consensus-"));
  }

  /**
   * `env` is added to each member's (telemetry is off unless it says otherwise). With
   * `directLinks`, members reach each other on their own ports, so a dead member's port
   * refuses connections as it would on a real network (a link proxy accepts them).
   */
  static async start(
    size = 3,
    extraArgs: string[] = [],
    env: Record<string, string> = {},
    { directLinks = false } = {},
  ): Promise<TestCluster> {
    const ids = Array.from({ length: size }, (_, i) => i + 1);
    const c = new TestCluster(ids, extraArgs, env, directLinks);
    for (const id of ids) c.ports.set(id, await freePort());
    for (const from of directLinks ? [] : ids) {
      for (const to of ids) {
        if (from === to) continue;
        c.links.set(
          `${from}>${to}`,
          await LinkProxy.start({ host: "127.0.0.1", port: c.ports.get(to)! }),
        );
      }
    }
    await Promise.all(ids.map((id) => c.startMember(id)));
    return c;
  }

  /**
   * A port and URL for member `id`, about to be added: MemberAddLearner takes the URL, then
   * `join(id)` starts it.
   */
  async reserve(id: number): Promise<string> {
    // Its links first: a proxy listening after freePort could take the port it found.
    for (const other of this.ids) await this.link(id, other);
    this.ports.set(id, await freePort());
    return `http://127.0.0.1:${this.ports.get(id)}`;
  }

  /**
   * Starts member `id` (reserved, and added with MemberAddLearner) with --join: it reaches
   * the others through links of its own; they reach it on the URL the membership change
   * carried (no link to cut, unless one of them restarts and takes it into its --peers).
   */
  async join(id: number): Promise<ServiceProcess> {
    if (!this.ids.includes(id)) this.ids.push(id);
    return this.startMember(id, ["--join", "true"]);
  }

  /**
   * Starts (or restarts) member `id` on its data directory, with `peerIds` (default: every
   * member started so far) in its --peers.
   */
  async startMember(
    id: number,
    args: string[] = [],
    peerIds: number[] = this.ids,
  ): Promise<ServiceProcess> {
    const urls: string[] = [];
    for (const other of peerIds) {
      urls.push(
        `${other}=${other === id || this.directLinks ? `http://127.0.0.1:${this.ports.get(other)}` : (await this.link(id, other)).url}`,
      );
    }
    const peers = urls.join(",");
    const member = await startServiceProcess(
      mainTs,
      [
        "--id",
        String(id),
        "--peers",
        peers,
        "--data-dir",
        join(this.dataDir, String(id)),
        "--tick-ms",
        "20",
        ...this.extraArgs,
        ...args,
      ],
      { env: { QUARTET_CLUSTER_TOKEN: clusterToken, OTEL_SDK_DISABLED: "true", ...this.env } },
    );
    this.members.set(id, member);
    return member;
  }

  /** The link `from` reaches `to` through (made on first use, for members added later). */
  private async link(from: number, to: number): Promise<LinkProxy> {
    let link = this.links.get(`${from}>${to}`);
    if (!link) {
      link = await LinkProxy.start({ host: "127.0.0.1", port: this.ports.get(to)! });
      this.links.set(`${from}>${to}`, link);
    }
    return link;
  }

  async kill(id: number): Promise<void> {
    await this.members.get(id)?.kill("SIGKILL");
    this.members.delete(id);
  }

  /** Cuts every link between the two groups (both directions). */
  partition(a: number[], b: number[]): void {
    for (const x of a) {
      for (const y of b) {
        this.links.get(`${x}>${y}`)?.cut();
        this.links.get(`${y}>${x}`)?.cut();
      }
    }
  }

  heal(): void {
    for (const link of this.links.values()) link.heal();
  }

  /** A client of member `id`'s KV service (gRPC over h2c, as other services call it). */
  kv(id: number): Client<typeof KVService> {
    let client = this.clients.get(id);
    if (!client) {
      client = this.client(KVService, id);
      this.clients.set(id, client);
    }
    return client;
  }

  /** A client of any of member `id`'s services (a new connection; gRPC over h2c). */
  client<S extends DescService>(service: S, id: number): Client<S> {
    return createClient(
      service,
      createGrpcTransport({ baseUrl: `http://127.0.0.1:${this.ports.get(id)}` }),
    );
  }

  async stop(): Promise<void> {
    await Promise.all([...this.members.values()].map((m) => m.kill("SIGKILL")));
    this.members.clear();
    await Promise.all([...this.links.values()].map((l) => l.close()));
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
