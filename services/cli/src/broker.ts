import { type Client, createClient } from "@connectrpc/connect";
import { BrokerService } from "@quartet/proto/quartet/broker/v1/broker_pb";
import type { Command } from "commander";
import { interruptible, positiveInt } from "./args.ts";
import { transportFor } from "./connection.ts";
import { colour, fail, printJson, printTable, progress } from "./output.ts";
import { readPayload, showPayload } from "./payload.ts";

interface BrokerOpts {
  brokerUrl: string;
  json?: boolean;
  base64?: boolean;
}

function brokerOptions(cmd: Command): Command {
  return cmd
    .option(
      "--broker-url <url>",
      "broker base URL (env QUARTET_BROKER_URL)",
      process.env.QUARTET_BROKER_URL ?? "http://127.0.0.1:7100",
    )
    .option("--json", "one JSON object per line on stdout")
    .option("--base64", "payloads are base64 (in arguments and in output)");
}

function broker(opts: BrokerOpts): Client<typeof BrokerService> {
  return createClient(BrokerService, transportFor(opts.brokerUrl));
}

const aborted = (e: unknown, signal: AbortSignal) => signal.aborted && e !== undefined;

/** pub, sub, request and queue: one module, registered on the root program. */
export function registerBrokerCommands(program: Command): void {
  brokerOptions(program.command("pub"))
    .description("publish one message to a subject")
    .argument("<subject>", "subject, e.g. orders.created")
    .argument("<payload>", "text, @file, or base64 with --base64")
    .action(async (subject: string, payload: string, opts: BrokerOpts) => {
      try {
        const res = await broker(opts).publish({
          subject,
          payload: readPayload(payload, Boolean(opts.base64)),
        });
        if (opts.json) printJson({ subject, delivered: res.delivered });
        else console.log(`published to ${colour.cyan(subject)}: ${res.delivered} subscriber(s)`);
      } catch (e) {
        fail(e, opts.brokerUrl);
      }
    });

  brokerOptions(program.command("sub"))
    .description("print messages published to a subject (wildcards * and >)")
    .argument("<subject>", "subject or pattern")
    .option("--queue <group>", "join a queue group (each message to one member)")
    .option("--count <n>", "exit after n messages", positiveInt("--count"))
    .action(async (subject: string, opts: BrokerOpts & { queue?: string; count?: number }) => {
      const abort = interruptible();
      let seen = 0;
      try {
        const stream = broker(opts).subscribe(
          { subject, queueGroup: opts.queue ?? "" },
          { signal: abort.signal },
        );
        for await (const res of stream) {
          if (res.ready) {
            // Scripts wait for this line before publishing; it goes to stderr so stdout stays data.
            process.stderr.write(`subscribed to ${subject}\n`);
          }
          for (const m of res.messages) {
            seen++;
            const payload = showPayload(m.payload, Boolean(opts.base64));
            if (opts.json)
              printJson({ subject: m.subject, payload, headers: m.headers, replyTo: m.replyTo });
            else console.log(`${colour.cyan(`[${m.subject}]`)} ${payload}`);
            if (opts.count !== undefined && seen >= opts.count) {
              abort.abort();
              return;
            }
          }
        }
      } catch (e) {
        if (!aborted(e, abort.signal)) fail(e, opts.brokerUrl);
      }
    });

  brokerOptions(program.command("request"))
    .description("send a request to a subject and print the one reply")
    .argument("<subject>", "subject a responder listens on")
    .argument("<payload>", "text, @file, or base64 with --base64")
    .option("--timeout <ms>", "how long to wait for a reply", positiveInt("--timeout"), 5000)
    .action(async (subject: string, payload: string, opts: BrokerOpts & { timeout: number }) => {
      try {
        const res = await broker(opts).request({
          subject,
          payload: readPayload(payload, Boolean(opts.base64)),
          timeoutMs: opts.timeout,
        });
        const reply = res.reply;
        const text = showPayload(reply?.payload ?? new Uint8Array(), Boolean(opts.base64));
        if (opts.json) printJson({ subject, payload: text, headers: reply?.headers ?? {} });
        else console.log(text);
      } catch (e) {
        fail(e, opts.brokerUrl);
      }
    });

  const queue = program.command("queue").description("work queues: enqueue, consume, stats");

  brokerOptions(queue.command("enqueue"))
    .description("append messages to a queue")
    .argument("<queue>", "queue name")
    .argument("<payload...>", "one or more payloads (text, @file, or base64 with --base64)")
    .action(async (name: string, payloads: string[], opts: BrokerOpts) => {
      try {
        const res = await broker(opts).enqueue({
          queue: name,
          messages: payloads.map((p) => ({ payload: readPayload(p, Boolean(opts.base64)) })),
        });
        const sequences = res.sequences.map(String);
        if (opts.json) printJson({ queue: name, sequences });
        else
          console.log(
            `enqueued ${sequences.length} to ${colour.cyan(name)}: seq ${sequences.join(", ")}`,
          );
      } catch (e) {
        fail(e, opts.brokerUrl);
      }
    });

  brokerOptions(queue.command("consume"))
    .description("print jobs from a queue, acking each once printed")
    .argument("<queue>", "queue name")
    .option("--count <n>", "exit after n jobs", positiveInt("--count"))
    .option("--no-ack", "leave jobs unacknowledged (they are redelivered after the ack deadline)")
    .action(async (name: string, opts: BrokerOpts & { count?: number; ack: boolean }) => {
      const abort = interruptible();
      const client = broker(opts);
      let seen = 0;
      try {
        const stream = client.receive(
          { queue: name, maxInFlight: opts.count ?? 16 },
          { signal: abort.signal },
        );
        for await (const res of stream) {
          if (res.ready) progress(`consuming ${name}`);
          for (const d of res.deliveries) {
            const payload = showPayload(
              d.message?.payload ?? new Uint8Array(),
              Boolean(opts.base64),
            );
            if (opts.json)
              printJson({ queue: name, sequence: d.sequence, attempt: d.attempt, payload });
            else console.log(`${colour.dim(`#${d.sequence}`)} ${payload}`);
            // Ack after printing: a job is only gone once the user has seen it.
            if (opts.ack) await client.ack({ queue: name, deliveryIds: [d.deliveryId] });
            seen++;
            if (opts.count !== undefined && seen >= opts.count) {
              abort.abort();
              return;
            }
          }
        }
      } catch (e) {
        if (!aborted(e, abort.signal)) fail(e, opts.brokerUrl);
      }
    });

  brokerOptions(queue.command("stats"))
    .description("depth, in-flight and dead letters of one queue, or of every queue")
    .argument("[queue]", "queue name (default: every queue)")
    .action(async (name: string | undefined, opts: BrokerOpts) => {
      try {
        const client = broker(opts);
        const queues = name
          ? [(await client.stats({ queue: name })).stats].filter((s) => s !== undefined)
          : (await client.listQueues({})).queues;
        const rows = queues.map((q) => ({
          queue: q.queue,
          depth: Number(q.depth),
          inFlight: Number(q.inFlight),
          deadLetters: Number(q.deadLetters),
          enqueued: Number(q.enqueuedTotal),
          acked: Number(q.ackedTotal),
          redelivered: Number(q.redeliveredTotal),
          consumers: q.consumers,
        }));
        if (opts.json) return printJson(name ? rows[0] : rows);
        printTable(
          ["QUEUE", "DEPTH", "IN-FLIGHT", "DEAD", "ENQUEUED", "ACKED", "REDELIVERED", "CONSUMERS"],
          rows.map((r) => [
            r.queue,
            String(r.depth),
            String(r.inFlight),
            r.deadLetters > 0 ? colour.red(String(r.deadLetters)) : "0",
            String(r.enqueued),
            String(r.acked),
            String(r.redelivered),
            String(r.consumers),
          ]),
        );
      } catch (e) {
        fail(e, opts.brokerUrl);
      }
    });
}
