import { readFileSync } from "node:fs";
import { createClient } from "@connectrpc/connect";
import {
  DeleteRangeResponseSchema,
  type KeyValue,
  KVService,
  PutResponseSchema,
  RangeResponseSchema,
  type ResponseOp,
  TxnResponseSchema,
} from "@quartet/proto/quartet/consensus/v1/kv_pb";
import { Event_EventType, EventSchema } from "@quartet/proto/quartet/consensus/v1/watch_pb";
import type { Command } from "commander";
import { interruptible, parseId, positiveInt } from "./args.ts";
import {
  type ConsensusOpts,
  consensusClient,
  consensusOptions,
  onFirstReachable,
} from "./consensus.ts";
import { badArguments, colour, fail, printProto } from "./output.ts";
import { prefixRange, readBytes, showBytes } from "./payload.ts";
import { parseTxn } from "./txn.ts";

interface KvOpts extends ConsensusOpts {
  base64?: boolean;
  prefix?: boolean;
}

function kvOptions(cmd: Command, { timeout = true } = {}): Command {
  return consensusOptions(cmd, { timeout }).option(
    "--base64",
    "keys and values are base64 (in arguments and in output)",
  );
}

/** [key, rangeEnd) for a key, or for every key under a prefix (the empty prefix: all keys). */
function keyRange(arg: string, opts: KvOpts): { key: Uint8Array; rangeEnd: Uint8Array } {
  const key = readBytes(arg, Boolean(opts.base64));
  if (opts.prefix) return prefixRange(key);
  if (key.length === 0)
    throw badArguments("the key is empty", "give a key, or --prefix '' for every key");
  return { key, rangeEnd: new Uint8Array() };
}

function printKvs(kvs: KeyValue[], opts: KvOpts & { keysOnly?: boolean }): void {
  for (const kv of kvs) {
    console.log(colour.cyan(showBytes(kv.key, opts.base64)));
    if (!opts.keysOnly) console.log(showBytes(kv.value, opts.base64));
  }
}

/** kv get, put, del, watch and txn: etcdctl's shapes over KVService and WatchService. */
export function registerKvCommands(program: Command): void {
  const kv = program
    .command("kv")
    .description("the consensus key-value store: get, put, del, watch, txn");

  kvOptions(kv.command("get"))
    .description("read a key, or every key under a prefix (linearizable)")
    .argument("<key>", "the key (text, or base64 with --base64)")
    .option("--prefix", "every key that starts with <key>")
    .option("--rev <n>", "read as of revision n (0: the latest)", "0")
    .option("--keys-only", "print keys without values")
    .option("--limit <n>", "at most n keys", positiveInt("--limit"))
    .addHelpText(
      "after",
      "\nPrints each key and then its value, one line each (a value that is not UTF-8 as base64:...).\n" +
        "A missing key prints nothing and exits 0, as etcdctl does; --json says count 0.",
    )
    .action(
      async (key: string, opts: KvOpts & { rev: string; keysOnly?: boolean; limit?: number }) => {
        try {
          const revision = parseId("--rev", opts.rev, { allowZero: true });
          const range = keyRange(key, opts);
          const res = await consensusClient(opts).retrying((m) =>
            m.kv.range(
              {
                ...range,
                revision,
                keysOnly: Boolean(opts.keysOnly),
                limit: BigInt(opts.limit ?? 0),
              },
              { timeoutMs: opts.timeout },
            ),
          );
          if (opts.json) return printProto(RangeResponseSchema, res);
          printKvs(res.kvs, opts);
          if (res.more)
            process.stderr.write(
              `${res.count} keys match, ${res.kvs.length} shown: raise --limit\n`,
            );
        } catch (e) {
          fail(e, opts.endpoints);
        }
      },
    );

  kvOptions(kv.command("put"))
    .description("write a value to a key")
    .argument("<key>", "the key (text, or base64 with --base64)")
    .argument("[value]", "the value (text, or base64 with --base64); omitted: read from stdin")
    .option("--lease <id>", "attach the key to this lease (it is deleted when the lease ends)")
    .option("--prev-kv", "also print the value it replaced")
    .action(
      async (
        key: string,
        value: string | undefined,
        opts: KvOpts & { lease?: string; prevKv?: boolean },
      ) => {
        try {
          const lease = opts.lease === undefined ? 0n : parseId("--lease", opts.lease);
          if (value === undefined && process.stdin.isTTY)
            process.stderr.write("reading the value from stdin; Ctrl-D ends it\n");
          const bytes =
            value === undefined
              ? new Uint8Array(readFileSync(0))
              : readBytes(value, Boolean(opts.base64), "value");
          const req = {
            key: keyRange(key, { ...opts, prefix: false }).key,
            value: bytes,
            lease,
            prevKv: Boolean(opts.prevKv),
          };
          const res = await onFirstReachable(opts, (t) =>
            createClient(KVService, t).put(req, { timeoutMs: opts.timeout }),
          );
          if (opts.json) return printProto(PutResponseSchema, res);
          console.log(colour.green("OK"));
          if (res.prevKv) printKvs([res.prevKv], opts);
        } catch (e) {
          fail(e, opts.endpoints);
        }
      },
    );

  kvOptions(kv.command("del"))
    .description("delete a key, or every key under a prefix; prints how many were deleted")
    .argument("<key>", "the key (text, or base64 with --base64)")
    .option("--prefix", "every key that starts with <key>")
    .option("--prev-kv", "also print the deleted keys and values")
    .action(async (key: string, opts: KvOpts & { prevKv?: boolean }) => {
      try {
        const req = { ...keyRange(key, opts), prevKv: Boolean(opts.prevKv) };
        const res = await onFirstReachable(opts, (t) =>
          createClient(KVService, t).deleteRange(req, { timeoutMs: opts.timeout }),
        );
        if (opts.json) return printProto(DeleteRangeResponseSchema, res);
        console.log(String(res.deleted));
        printKvs(res.prevKvs, opts);
      } catch (e) {
        fail(e, opts.endpoints);
      }
    });

  kvOptions(kv.command("watch"), { timeout: false })
    .description("print every change to a key or prefix, until Ctrl-C or --count changes")
    .argument("<key>", "the key (text, or base64 with --base64)")
    .option("--prefix", "every key that starts with <key>")
    .option("--rev <n>", "start at revision n, replaying the changes since (default: from now)")
    .option("--prev-kv", "also print each key's previous value")
    .option("--count <n>", "exit after n changes", positiveInt("--count"))
    .addHelpText(
      "after",
      '\nOne line per change: "PUT <key> <value>" or "DELETE <key>" (--prev-kv adds "(was <value>)").\n' +
        'Once the watch is live it says "watching <key> from revision N" on stderr: every change\n' +
        "from N on is printed, once and in order, across member failures.",
    )
    .action(
      async (key: string, opts: KvOpts & { rev?: string; prevKv?: boolean; count?: number }) => {
        const abort = interruptible();
        let seen = 0;
        try {
          const range = keyRange(key, opts);
          const client = consensusClient(opts);
          let from = opts.rev === undefined ? 0n : parseId("--rev", opts.rev);
          // Read the current revision first: it checks the cluster answers, and watching from
          // the revision after it misses nothing written once "watching" is printed.
          const now = await client.retrying((m) =>
            m.kv.range({ ...range, countOnly: true }, { signal: abort.signal }),
          );
          if (from === 0n) from = (now.header?.revision ?? 0n) + 1n;
          process.stderr.write(
            `watching ${showBytes(range.key, opts.base64)} from revision ${from}\n`,
          );
          for await (const event of client.watch(
            { ...range, startRevision: from, prevKv: Boolean(opts.prevKv) },
            abort.signal,
          )) {
            if (opts.json) printProto(EventSchema, event);
            else {
              const isPut = event.type === Event_EventType.PUT;
              const k = showBytes(event.kv?.key ?? new Uint8Array(), opts.base64);
              const v = isPut
                ? ` ${showBytes(event.kv?.value ?? new Uint8Array(), opts.base64)}`
                : "";
              const prev = event.prevKv
                ? ` (was ${showBytes(event.prevKv.value, opts.base64)})`
                : "";
              console.log(`${isPut ? colour.green("PUT") : colour.red("DELETE")} ${k}${v}${prev}`);
            }
            if (opts.count !== undefined && ++seen >= opts.count) return abort.abort();
          }
        } catch (e) {
          if (!abort.signal.aborted) fail(e, opts.endpoints);
        }
      },
    );

  kvOptions(kv.command("txn"))
    .description("a transaction read from stdin in etcdctl's format: if compares then ops else ops")
    .addHelpText(
      "after",
      `
Reads, from stdin: compares, one per line; a blank line; the operations when every compare
holds; a blank line; the operations otherwise. Compares: value|version|create|mod|lease("key")
followed by = != < > and a value. Operations: put <key> <value> [--lease=ID], get <key>
[--prefix], del <key> [--prefix]. Words with spaces go in double quotes (JSON escapes).

  printf 'value("owner") = "me"\\n\\nput config v2\\n\\nget owner\\n' | quartet kv txn

Prints SUCCESS or FAILURE, then each operation's result; exit 0 either way (--json: "succeeded").`,
    )
    .action(async (opts: KvOpts) => {
      try {
        if (process.stdin.isTTY)
          process.stderr.write(
            "compares, blank line, success ops, blank line, failure ops; Ctrl-D ends\n",
          );
        const req = parseTxn(readFileSync(0, "utf8"));
        const res = await onFirstReachable(opts, (t) =>
          createClient(KVService, t).txn(req, { timeoutMs: opts.timeout }),
        );
        if (opts.json) return printProto(TxnResponseSchema, res);
        console.log(res.succeeded ? colour.green("SUCCESS") : colour.yellow("FAILURE"));
        for (const r of res.responses) printOpResult(r, opts);
      } catch (e) {
        fail(e, opts.endpoints);
      }
    });
}

function printOpResult(r: ResponseOp, opts: KvOpts): void {
  console.log("");
  switch (r.response.case) {
    case "responsePut":
      console.log("OK");
      break;
    case "responseDeleteRange":
      console.log(String(r.response.value.deleted));
      break;
    case "responseRange":
      printKvs(r.response.value.kvs, opts);
      break;
  }
}
