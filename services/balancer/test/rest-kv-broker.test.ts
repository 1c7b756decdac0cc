import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, type ServiceProcess, startServiceProcess } from "@quartet/server/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startGateway } from "./processes.ts";

// The REST bindings of the KV, lease and broker APIs, through a real gateway in front of a
// real (one-member) consensus cluster and a real broker.
const consensusEntry = fileURLToPath(new URL("../../consensus/src/main.ts", import.meta.url));
const brokerEntry = fileURLToPath(new URL("../../broker/src/main.ts", import.meta.url));
const env = { QUARTET_CLUSTER_TOKEN: "rest-kv-test-token-0123456789", OTEL_SDK_DISABLED: "true" };

let dataDir: string;
let consensus: ServiceProcess;
let broker: ServiceProcess;
let gateway: ServiceProcess;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "quartet-rest-kv-"));
  const port = await freePort();
  [consensus, broker] = await Promise.all([
    startServiceProcess(
      consensusEntry,
      ["--id", "1", "--peers", `1=http://127.0.0.1:${port}`, "--data-dir", dataDir],
      { env },
    ),
    startServiceProcess(brokerEntry, ["--port", "0", "--queues", "jobs"], { env }),
  ]);
  const kv = ["KVService", "LeaseService"].map((s) => `quartet.consensus.v1.${s}=${consensus.url}`);
  gateway = await startGateway(
    ["--route", [...kv, `quartet.broker.v1.BrokerService=${broker.url}`].join(";")],
    { env },
  );
  // The member elects itself; until then writes answer Unavailable (503).
  for (let i = 0; i < 300; i++) {
    if ((await call("PUT", "/v1/kv/ready", { value: b64("yes") })).status === 200) break;
  }
}, 60_000);
afterAll(async () => {
  await gateway?.kill("SIGTERM");
  await Promise.all([consensus?.kill("SIGTERM"), broker?.kill("SIGTERM")]);
  rmSync(dataDir, { recursive: true, force: true });
});

const b64 = (text: string | Uint8Array) => Buffer.from(text).toString("base64");

async function call(
  verb: string,
  path: string,
  body?: unknown,
  // biome-ignore lint/suspicious/noExplicitAny: REST answers are JSON of many shapes.
): Promise<{ status: number; json: any }> {
  const res = await fetch(`${gateway.url}${path}`, {
    method: verb,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, json: await res.json() };
}

describe("KV over REST", () => {
  it("PUT writes a key, GET reads its value and revisions, DELETE deletes it, then GET is 404", async () => {
    const put = await call("PUT", "/v1/kv/app/greeting", { value: b64("hello") });
    expect(put.status).toBe(200);
    const revision = Number(put.json.header.revision);
    expect(revision).toBeGreaterThan(0);

    const got = await call("GET", "/v1/kv/app/greeting");
    expect(got.status).toBe(200);
    expect(got.json.kvs).toEqual([
      {
        key: b64("app/greeting"),
        value: b64("hello"),
        createRevision: String(revision),
        modRevision: String(revision),
        version: "1",
      },
    ]);

    const deleted = await call("DELETE", "/v1/kv/app/greeting");
    expect(deleted.status).toBe(200);
    expect(deleted.json.deleted).toBe("1");

    const missing = await call("GET", "/v1/kv/app/greeting");
    expect(missing.status).toBe(404);
    expect(missing.json).toEqual({ code: 5, message: 'key "app/greeting" not found', details: [] });
  });

  it("a key in the path is its percent-encoded bytes, any byte included", async () => {
    const key = Uint8Array.from([...Buffer.from("café"), 0xff]);
    expect((await call("PUT", "/v1/kv/caf%C3%A9%FF", { value: b64("x") })).status).toBe(200);
    const got = await call("GET", `/v1/kv?key=${encodeURIComponent(b64(key))}`);
    // Query bytes are percent-encoded too: a base64 spelling is another key, which is absent.
    expect(got.json.kvs ?? []).toEqual([]);
    const same = await call("GET", "/v1/kv/caf%C3%A9%FF");
    expect(same.json.kvs[0].key).toBe(b64(key));
  });

  it("GET /v1/kv reads a range from query parameters, booleans included", async () => {
    for (const name of ["b", "a", "c"])
      await call("PUT", `/v1/kv/fruit/${name}`, { value: b64(name) });
    await call("PUT", "/v1/kv/fruits", { value: b64("not in the prefix") });
    // The keys with prefix "fruit/": rangeEnd is the prefix with its last byte plus one.
    const range = await call("GET", "/v1/kv?key=fruit/&rangeEnd=fruit0&keysOnly=true&limit=2");
    expect(range.status).toBe(200);
    expect(
      range.json.kvs.map((kv: { key: string }) => Buffer.from(kv.key, "base64").toString()),
    ).toEqual(["fruit/a", "fruit/b"]);
    expect(range.json.kvs[0].value).toBeUndefined();
    expect(range.json.more).toBe(true);
    expect(range.json.count).toBe("3");
  });

  it("a path variable of the wrong type is 400 naming the field", async () => {
    const res = await call("GET", "/v1/leases/soon");
    expect(res.status).toBe(400);
    expect(res.json.code).toBe(3);
    expect(res.json.message).toContain("LeaseTimeToLiveRequest.id");
  });

  it("an unknown query parameter is 400 naming it, also where the body is the whole message", async () => {
    const unknown = await call("GET", "/v1/kv/x?prefix=a");
    expect(unknown.status).toBe(400);
    expect(unknown.json.message).toContain('"prefix"');
    const withBody = await call("PUT", "/v1/kv/x?lease=5", { value: b64("v") });
    expect(withBody.status).toBe(400);
    expect(withBody.json.message).toContain('"lease"');
    const badBool = await call("GET", "/v1/kv/x?keysOnly=yes");
    expect(badBool.status).toBe(400);
    expect(badBool.json.message).toContain("keys_only");
  });

  it("a body that is not the message is 400 naming the field", async () => {
    const res = await call("PUT", "/v1/kv/x", { valu: b64("v") });
    expect(res.status).toBe(400);
    expect(res.json.message).toContain("valu");
  });

  it("a malformed percent-encoding is 400 saying how to write a %", async () => {
    const res = await call("GET", "/v1/kv/100%zz");
    expect(res.status).toBe(400);
    expect(res.json.message).toContain("%25");
  });

  it("leases: grant, attach a key, read its time to live with its keys, revoke", async () => {
    const grant = await call("POST", "/v1/leases", { ttl: "60" });
    expect(grant.status).toBe(200);
    const id = grant.json.id as string;
    await call("PUT", "/v1/kv/leased", { value: b64("v"), lease: id });
    const ttl = await call("GET", `/v1/leases/${id}?keys=true`);
    expect(ttl.json.grantedTtl).toBe("60");
    expect(ttl.json.keys).toEqual([b64("leased")]);
    expect((await call("POST", `/v1/leases/${id}/keepalive`)).json.ttl).toBe("60");
    expect((await call("DELETE", `/v1/leases/${id}`)).status).toBe(200);
    expect((await call("GET", "/v1/kv/leased")).status).toBe(404);
    expect((await call("DELETE", `/v1/leases/${id}`)).status).toBe(404);
  });
});

describe("REST from a browser page", () => {
  it("the preflight of a PUT or DELETE from an allowed origin lets the page send it", async () => {
    for (const verb of ["PUT", "DELETE"]) {
      const preflight = await fetch(`${gateway.url}/v1/kv/from-a-page`, {
        method: "OPTIONS",
        headers: {
          origin: "http://localhost:5173",
          "access-control-request-method": verb,
          "access-control-request-headers": "content-type",
        },
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get("access-control-allow-origin")).toBe("http://localhost:5173");
      expect(preflight.headers.get("access-control-allow-methods")).toContain(verb);
    }
  });
});

describe("the broker over REST", () => {
  it("POST /v1/queues/{queue}/messages enqueues; GET /v1/queues/{queue} counts it", async () => {
    const res = await call("POST", "/v1/queues/jobs/messages", {
      messages: [{ payload: b64("job 1") }, { payload: b64("job 2") }],
    });
    expect(res.status).toBe(200);
    expect(res.json.sequences).toHaveLength(2);
    const stats = await call("GET", "/v1/queues/jobs");
    expect(stats.json.stats.queue).toBe("jobs");
    expect(stats.json.stats.enqueuedTotal).toBe("2");
    expect(
      (await call("GET", "/v1/queues")).json.queues.map((q: { queue: string }) => q.queue),
    ).toEqual(["jobs"]);
  });

  it("an unknown queue is 404, a publish with no subscriber delivers to none", async () => {
    const res = await call("POST", "/v1/queues/nope/messages", { messages: [{ payload: "" }] });
    expect(res.status).toBe(404);
    expect(res.json.message).toContain("nope");
    const published = await call("POST", "/v1/subjects/orders.created/messages", {
      payload: b64("{}"),
    });
    expect(published.status).toBe(200);
    expect(published.json.delivered ?? 0).toBe(0);
  });
});
