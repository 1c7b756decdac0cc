import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Message, ReceiveResponse } from "@quartet/proto/quartet/broker/v1/broker_pb";
import type { ServiceProcess } from "@quartet/server/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BrokerClient } from "../src/client.ts";
import { dataDir, refused, startBroker, str, text } from "./brokers.ts";

const ALICE = "alice-token-0123456789abcdef";
const BOB = "bob-token-0123456789abcdef0";
const MALLORY = "mallory-token-0123456789abc";

function credentialsFile(): string {
  const file = join(dataDir(), "credentials.json");
  const everything = { allow: [">"] };
  writeFileSync(
    file,
    JSON.stringify({
      identities: [
        {
          name: "alice",
          token: ALICE,
          permissions: {
            publish: { allow: ["orders.>", "svc.>"], deny: ["orders.secret"] },
            subscribe: { allow: ["orders.>"], deny: ["orders.secret"] },
            queue: { allow: ["jobs"] },
          },
        },
        {
          name: "bob",
          token: BOB,
          permissions: { publish: everything, subscribe: everything, queue: everything },
        },
        {
          name: "mallory",
          token: MALLORY,
          permissions: { publish: everything, subscribe: everything, queue: everything },
        },
      ],
      anonymous: { subscribe: { allow: ["public.>"] } },
    }),
  );
  return file;
}

let broker: ServiceProcess;
let denyingBroker: ServiceProcess;
beforeAll(async () => {
  const file = credentialsFile();
  [broker, denyingBroker] = await Promise.all([
    startBroker([
      "--credentials-file",
      file,
      "--anonymous",
      "open",
      "--max-subscriptions-per-client",
      "2",
      "--queues",
      "jobs,payroll",
    ]),
    startBroker(["--credentials-file", file, "--anonymous", "deny"]),
  ]);
});
afterAll(async () => {
  await Promise.all([broker?.kill("SIGTERM"), denyingBroker?.kill("SIGTERM")]);
});

const as = (credentials: string, url = broker.url) =>
  new BrokerClient({ baseUrl: url, credentials });

/** A client without credentials; `label` is its quartet-client-id. */
const anonymous = (url: string, label?: string) =>
  new BrokerClient({ baseUrl: url, ...(label ? { clientId: label } : {}) });

/** The next message of a subscription. */
async function next(sub: { messages: AsyncIterable<Message> }): Promise<Message> {
  const result = await sub.messages[Symbol.asyncIterator]().next();
  if (result.done) throw new Error("the subscription ended");
  return result.value;
}

async function nextDeliveries(stream: AsyncIterator<ReceiveResponse>) {
  const next = await stream.next();
  if (next.done) throw new Error("the receive stream ended");
  return next.value.deliveries;
}

describe("identities from bearer tokens", () => {
  it("an unknown token is Unauthenticated; anonymous clients are refused with --anonymous deny", async () => {
    expect((await refused(() => as("not-a-token").publish("orders.x", text("x")))).code).toBe(
      Code.Unauthenticated,
    );
    const anon = anonymous(denyingBroker.url);
    const err = await refused(() => anon.publish("orders.x", text("x")));
    expect(err.code).toBe(Code.Unauthenticated);
    expect(err.rawMessage).toMatch(/refuses anonymous clients/);
    expect(await as(BOB, denyingBroker.url).publish("orders.x", text("x"))).toBe(0);
  });

  it("--anonymous restricted gives clients without a token the file's anonymous rules", async () => {
    const restricted = await startBroker([
      "--credentials-file",
      credentialsFile(),
      "--anonymous",
      "restricted",
    ]);
    try {
      const anon = anonymous(restricted.url, "visitor");
      const sub = await anon.subscribe("public.news");
      sub.close();
      expect((await refused(() => anon.subscribe("orders.>"))).code).toBe(Code.PermissionDenied);
      const err = await refused(() => anon.publish("public.news", text("x")));
      expect(err.code).toBe(Code.PermissionDenied);
      expect(err.rawMessage).toContain('anonymous may not publish to "public.news"');
    } finally {
      await restricted.kill("SIGTERM");
    }
  });

  it("a bad credentials file stops the broker at start with a message naming the field", async () => {
    const file = join(dataDir(), "bad.json");
    writeFileSync(
      file,
      JSON.stringify({ identities: [{ name: "x", token: "short", permissions: {} }] }),
    );
    await expect(startBroker(["--credentials-file", file])).rejects.toThrow(
      /credentials file .*bad\.json[\s\S]*identities\[0\]\.token/,
    );
  });

  it("publish and subscribe follow allow and deny lists (deny wins)", async () => {
    const alice = as(ALICE);
    for (const subject of ["orders.secret", "billing.x"]) {
      const err = await refused(() => alice.publish(subject, text("x")));
      expect(err.code).toBe(Code.PermissionDenied);
      expect(err.rawMessage).toContain(`alice may not publish to "${subject}"`);
    }
    expect((await refused(() => alice.subscribe("billing.>"))).code).toBe(Code.PermissionDenied);
    expect((await refused(() => alice.subscribe(">"))).code).toBe(Code.PermissionDenied);
    // A filter overlapping a denied subject is allowed, but withholds the denied messages.
    const sub = await alice.subscribe("orders.*");
    await as(BOB).publishBatch([
      { subject: "orders.secret", payload: text("hidden") },
      { subject: "orders.eu", payload: text("shown") },
    ]);
    const first = await next(sub);
    expect(first.subject).toBe("orders.eu");
    sub.close();
  });

  it("queues are authorized by name: a refused enqueue changes nothing", async () => {
    const alice = as(ALICE);
    const err = await refused(() => alice.enqueue("payroll", [{ payload: text("raise") }]));
    expect(err.code).toBe(Code.PermissionDenied);
    expect((await as(BOB).broker.stats({ queue: "payroll" })).stats?.depth).toBe(0n);
    expect((await alice.broker.listQueues({})).queues.map((q) => q.queue)).toEqual(["jobs"]);
  });
});

describe("delivery ids", () => {
  it("are random and bound to the receiving stream: others' acks are NotFound and change nothing", async () => {
    const bob = as(BOB);
    await bob.enqueue(
      "jobs",
      [1, 2, 3].map((n) => ({ payload: text(`job-${n}`) })),
    );
    const abort = new AbortController();
    const stream = bob.broker
      .receive({ queue: "jobs", maxInFlight: 3 }, { signal: abort.signal })
      [Symbol.asyncIterator]();
    expect((await stream.next()).value?.ready).toBe(true);
    const held: bigint[] = [];
    while (held.length < 3) for (const d of await nextDeliveries(stream)) held.push(d.deliveryId);
    // Consecutive deliveries do not have neighbouring ids (the attack guessed id + 1).
    expect(
      held.some((id, i) => i > 0 && (id - held[i - 1]! === 1n || held[i - 1]! - id === 1n)),
    ).toBe(false);

    const mallory = as(MALLORY);
    const guesses = [...Array.from({ length: 50 }, (_, i) => BigInt(i + 1)), held[0]! + 1n];
    for (const id of guesses) {
      const err = await refused(() => mallory.broker.ack({ queue: "jobs", deliveryIds: [id] }));
      expect(err.code).toBe(Code.NotFound);
    }
    // Even a leaked id does not work for another identity, nor on another queue.
    expect(
      (await refused(() => mallory.broker.ack({ queue: "jobs", deliveryIds: held }))).code,
    ).toBe(Code.NotFound);
    expect(
      (await refused(() => mallory.broker.nack({ queue: "jobs", deliveryIds: [held[0]!] }))).code,
    ).toBe(Code.NotFound);
    expect(
      (await refused(() => bob.broker.ack({ queue: "payroll", deliveryIds: held }))).code,
    ).toBe(Code.NotFound);
    expect((await bob.broker.stats({ queue: "jobs" })).stats).toMatchObject({
      inFlight: 3n,
      ackedTotal: 0n,
    });

    await bob.broker.ack({ queue: "jobs", deliveryIds: held });
    expect((await bob.broker.stats({ queue: "jobs" })).stats).toMatchObject({
      inFlight: 0n,
      ackedTotal: 3n,
    });
    // Settled ids are spent.
    expect(
      (await refused(() => bob.broker.ack({ queue: "jobs", deliveryIds: [held[0]!] }))).code,
    ).toBe(Code.NotFound);
    abort.abort();
  });
});

describe("reply inboxes", () => {
  it("a `>` subscriber sees requests without reply subjects and never the replies; `_INBOX.>` is refused", async () => {
    const spy = anonymous(broker.url);
    expect((await refused(() => spy.subscribe("_INBOX.>"))).code).toBe(Code.PermissionDenied);
    const all = await spy.subscribe(">");
    const responder = await as(BOB).subscribe("svc.echo");
    const replied = (async () => {
      const req = await next(responder);
      await as(BOB).publish(req.replyTo, text(`echo ${str(req.payload)}`));
    })();
    const reply = await as(ALICE).request("svc.echo", text("hi"));
    await replied;
    expect(str(reply.payload)).toBe("echo hi");
    await as(BOB).publish("public.marker", text("end"));
    const seen = [await next(all), await next(all)];
    expect(seen.map((m) => [m.subject, m.replyTo])).toEqual([
      ["svc.echo", ""],
      ["public.marker", ""],
    ]);
    all.close();
    responder.close();
  });

  it("only the responder delivered a request may answer it, once", async () => {
    const responder = await as(BOB).subscribe("svc.pay");
    const mallory = as(MALLORY);
    const pending = as(ALICE).request("svc.pay", text("pay 10"));
    const req = await next(responder);
    expect(req.replyTo).toMatch(/^_INBOX\.[0-9a-f]{32}$/);

    // Forging: the alias Bob was shown, an inbox guessed in the broker's own form, or a
    // request that points responders at someone's inbox.
    for (const subject of [req.replyTo, "_INBOX.abc.1"]) {
      const err = await refused(() => mallory.publish(subject, text("forged")));
      expect(err.code).toBe(Code.PermissionDenied);
    }
    const err = await refused(() =>
      mallory.publish("svc.pay", text("x"), { replyTo: "_INBOX.abc.1" }),
    );
    expect(err.code).toBe(Code.PermissionDenied);

    // Two replies in one batch: refused whole, and the alias stays good for one reply.
    const twice = await refused(() =>
      as(BOB).publishBatch([
        { subject: req.replyTo, payload: text("paid") },
        { subject: req.replyTo, payload: text("paid again") },
      ]),
    );
    expect(twice.code).toBe(Code.PermissionDenied);
    expect(twice.rawMessage).toMatch(/^messages\[1\]\.subject: /);
    await as(BOB).publish(req.replyTo, text("paid"));
    expect(str((await pending).payload)).toBe("paid");
    const again = await refused(() => as(BOB).publish(req.replyTo, text("paid twice")));
    expect(again.code).toBe(Code.PermissionDenied);
    responder.close();
  });
});

describe("per-identity limits", () => {
  it("an anonymous client gets no fresh budget by changing quartet-client-id; an identity has its own", async () => {
    const subs = [
      await anonymous(broker.url, "a").subscribe("public.one"),
      await anonymous(broker.url, "b").subscribe("public.two"),
    ];
    const err = await refused(() => anonymous(broker.url, "c").subscribe("public.three"));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.rawMessage).toContain("anonymous already has 2 subscriptions");
    const own = await as(ALICE).subscribe("orders.limits");
    own.close();
    for (const s of subs) s.close();
  });
});

// The attacks of issue 13 against a broker with no credentials configured (the local
// default: anonymous clients may do everything, but not to each other).
describe("attacks between anonymous clients of an open broker", () => {
  let open: ServiceProcess;
  beforeAll(async () => {
    open = await startBroker(["--max-subscriptions-per-client", "2", "--queues", "work"]);
  });
  afterAll(async () => {
    await open?.kill("SIGTERM");
  });

  it("guessing delivery ids settles nothing: 50 guesses are all NotFound", async () => {
    const consumer = anonymous(open.url, "consumer");
    await consumer.enqueue(
      "work",
      [1, 2, 3].map((n) => ({ payload: text(`job-${n}`) })),
    );
    const abort = new AbortController();
    const stream = consumer.broker
      .receive({ queue: "work", maxInFlight: 3 }, { signal: abort.signal })
      [Symbol.asyncIterator]();
    expect((await stream.next()).value?.ready).toBe(true);
    let held = 0;
    while (held < 3) held += (await nextDeliveries(stream)).length;
    const thief = anonymous(open.url, "thief");
    let stolen = 0;
    for (let guess = 1n; guess <= 50n; guess++) {
      try {
        await thief.broker.ack({ queue: "work", deliveryIds: [guess] });
        stolen++;
      } catch (e) {
        expect(ConnectError.from(e).code).toBe(Code.NotFound);
      }
    }
    expect(stolen).toBe(0);
    expect((await thief.broker.stats({ queue: "work" })).stats).toMatchObject({
      inFlight: 3n,
      ackedTotal: 0n,
    });
    abort.abort();
  });

  it("a `>` subscriber cannot see reply inboxes or answer others' requests", async () => {
    const spy = await anonymous(open.url, "spy").subscribe(">");
    const responder = await anonymous(open.url, "responder").subscribe("svc.echo");
    const pending = anonymous(open.url, "requester").request("svc.echo", text("hi"));
    const seen = await next(spy);
    expect(seen.replyTo).toBe("");
    const req = await next(responder);
    // The spy guesses the inbox in the broker's own form instead.
    const forged = await refused(() =>
      anonymous(open.url, "spy").publish(
        `${req.replyTo.split(".").slice(0, 2).join(".")}.1`,
        text("forged"),
      ),
    );
    expect(forged.code).toBe(Code.PermissionDenied);
    await anonymous(open.url, "responder").publish(req.replyTo, text("echo hi"));
    expect(str((await pending).payload)).toBe("echo hi");
    await anonymous(open.url, "requester").publish("after.reply", text("marker"));
    expect((await next(spy)).subject).toBe("after.reply");
    spy.close();
    responder.close();
  });

  it("changing quartet-client-id gets no fresh subscription budget", async () => {
    const subs = [
      await anonymous(open.url, "one").subscribe("x.one"),
      await anonymous(open.url, "two").subscribe("x.two"),
    ];
    const err = await refused(() => anonymous(open.url, "three").subscribe("x.three"));
    expect(err.code).toBe(Code.ResourceExhausted);
    for (const s of subs) s.close();
  });
});
