import { createClient, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { BrokerService } from "@quartet/proto/quartet/broker/v1/broker_pb";
import type { ServiceProcess } from "@quartet/server/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBroker, startGateway } from "./processes.ts";

let broker: ServiceProcess;
let gateway: ServiceProcess;

beforeAll(async () => {
  broker = await startBroker();
  gateway = await startGateway(["--route", `quartet.broker.v1.BrokerService=${broker.url}`]);
}, 60_000);
afterAll(async () => {
  await gateway?.kill("SIGTERM");
  await broker?.kill("SIGTERM");
});

const protocols: [string, (baseUrl: string) => Transport][] = [
  ["Connect over h2c", (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "2" })],
  ["gRPC over h2c", (baseUrl) => createGrpcTransport({ baseUrl })],
  ["gRPC-Web over h2c", (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "2" })],
];

async function* batches(subject: string) {
  yield { messages: [{ subject, payload: new Uint8Array([1]) }] };
  yield { messages: [{ subject, payload: new Uint8Array([2]) }, { subject }] };
}

/** Three requests nobody answers: each comes back as its own result. */
async function* requests() {
  for (let i = 0; i < 3; i++) yield { requests: [{ subject: `nobody.home.${i}`, timeoutMs: 20 }] };
}

async function requestStream(transport: Transport) {
  const client = createClient(BrokerService, transport);
  const results: string[] = [];
  for await (const res of client.requestStream(requests()))
    for (const r of res.results) results.push(`${r.index}:${r.errorCode}`);
  return results.sort();
}

describe.each(protocols)("broker streams through the gateway, %s", (_name, make) => {
  it("client streaming (PublishStream) answers as the broker does directly", async () => {
    const direct = await createClient(BrokerService, make(broker.url)).publishStream(
      batches("a.b"),
    );
    const via = await createClient(BrokerService, make(gateway.url)).publishStream(batches("a.b"));
    expect(via.delivered).toBe(direct.delivered);
  });

  it("bidi streaming (RequestStream) answers as the broker does directly", async () => {
    const direct = await requestStream(make(broker.url));
    const via = await requestStream(make(gateway.url));
    expect(direct).toHaveLength(3);
    expect(via).toEqual(direct);
  });
});
