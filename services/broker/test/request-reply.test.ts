import { createHash } from "node:crypto";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  ComputeRequestSchema,
  ComputeResponseSchema,
} from "@quartet/proto/quartet/worker/v1/worker_pb";
import type { ServiceProcess } from "@quartet/server/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BrokerClient } from "../src/client.ts";
import { client, startBroker, startConsumerWorker, text } from "./brokers.ts";

let broker: ServiceProcess;
let workers: ServiceProcess[];

beforeAll(async () => {
  broker = await startBroker();
  workers = await Promise.all(
    ["rr-a", "rr-b"].map((id) =>
      startConsumerWorker(id, broker.url, ["--request-subject", "compute.sha"]),
    ),
  );
  await Promise.all(workers.map((w) => w.waitForLog((l) => l.msg === "responder subscribed")));
}, 30_000);

afterAll(async () => {
  await Promise.all((workers ?? []).map((w) => w.kill("SIGTERM")));
  await broker?.kill("SIGTERM");
});

const sha = (input: string) => createHash("sha256").update(input).digest("hex");

describe("request-reply across processes", () => {
  it("concurrent requests each get their own reply, from the worker responders", async () => {
    const requester = client(broker.url, "requester");
    const inputs = Array.from({ length: 64 }, (_, i) => `job-${i}`);
    const replies = await Promise.all(
      inputs.map((input) =>
        requester.request(
          "compute.sha",
          toBinary(ComputeRequestSchema, create(ComputeRequestSchema, { input })),
          { timeoutMs: 10_000 },
        ),
      ),
    );
    const answers = replies.map((r) => fromBinary(ComputeResponseSchema, r.payload));
    expect(answers.map((a) => a.digest)).toEqual(inputs.map(sha));
    // Both workers share the requests (queue group "workers").
    expect(new Set(answers.map((a) => a.workerId))).toEqual(new Set(["rr-a", "rr-b"]));
    // The unary Request method works too.
    const one = await requester.broker.request({
      subject: "compute.sha",
      payload: toBinary(ComputeRequestSchema, create(ComputeRequestSchema, { input: "x" })),
    });
    expect(fromBinary(ComputeResponseSchema, one.reply!.payload).digest).toBe(sha("x"));
  }, 30_000);

  it("a request nobody listens to fails with no responders (Unavailable)", async () => {
    const requester = client(broker.url);
    for (const call of [
      () => requester.request("nobody.home", text("hi")),
      () => requester.broker.request({ subject: "nobody.home", payload: text("hi") }),
    ]) {
      const err = ConnectError.from(await call().catch((e: unknown) => e));
      expect(err.code).toBe(Code.Unavailable);
      expect(err.rawMessage).toMatch(/no responders: nothing subscribes to "nobody.home"/);
    }
  });

  it("a request past its deadline fails with DeadlineExceeded", async () => {
    const silent = await client(broker.url).subscribe("silent.service");
    const requester = client(broker.url);
    const viaDeadline = ConnectError.from(
      await requester.broker
        .request({ subject: "silent.service", payload: text("?") }, { timeoutMs: 300 })
        .catch((e: unknown) => e),
    );
    expect(viaDeadline.code).toBe(Code.DeadlineExceeded);
    const viaField = ConnectError.from(
      await requester
        .request("silent.service", text("?"), { timeoutMs: 200 })
        .catch((e: unknown) => e),
    );
    expect(viaField.code).toBe(Code.DeadlineExceeded);
    expect(viaField.rawMessage).toMatch(/no reply on "silent.service" before the deadline/);
    silent.close();
  });

  it("without streams (RequestMany, as browsers do) concurrent requests get their own replies too", async () => {
    const requester = new BrokerClient({ baseUrl: broker.url, streaming: false });
    const inputs = ["a", "b", "c", "d"];
    const replies = await Promise.all(
      inputs.map((input) =>
        requester.request(
          "compute.sha",
          toBinary(ComputeRequestSchema, create(ComputeRequestSchema, { input })),
        ),
      ),
    );
    expect(replies.map((r) => fromBinary(ComputeResponseSchema, r.payload).digest)).toEqual(
      inputs.map(sha),
    );
    const none = ConnectError.from(
      await requester.request("nobody.home", text("?")).catch((e: unknown) => e),
    );
    expect(none.code).toBe(Code.Unavailable);
  });
});
