import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { KVService } from "@quartet/proto/quartet/consensus/v1/kv_pb";
import { freePort, type ServiceProcess, startServiceProcess } from "@quartet/server/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jsonLines, oneLine, runCli, startCli } from "./cli.ts";

const consensusEntry = fileURLToPath(new URL("../../consensus/src/main.ts", import.meta.url));
const TOKEN = "cli-test-cluster-token-0123456789";
const b64 = (s: string | Uint8Array) => Buffer.from(s).toString("base64");

let members: ServiceProcess[] = [];
let dir: string;
let endpoints: string;
let closedUrl: string;
/** What a user of the cluster has: the endpoints and the credential in the environment. */
let env: Record<string, string>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "quartet-cli-consensus-"));
  const ports = [await freePort(), await freePort(), await freePort()];
  const peers = ports.map((p, i) => `${i + 1}=http://127.0.0.1:${p}`).join(",");
  members = await Promise.all(
    ports.map((_, i) =>
      startServiceProcess(
        consensusEntry,
        [
          "--id",
          String(i + 1),
          "--peers",
          peers,
          "--data-dir",
          join(dir, String(i + 1)),
          "--tick-ms",
          "20",
        ],
        // A 20 ms tick elects a leader within a few hundred ms of start.
        { env: { QUARTET_CLUSTER_TOKEN: TOKEN, OTEL_SDK_DISABLED: "true" } },
      ),
    ),
  );
  endpoints = members.map((m) => m.url).join(",");
  closedUrl = `http://127.0.0.1:${await freePort()}`;
  env = { QUARTET_ENDPOINTS: endpoints, QUARTET_CLUSTER_TOKEN: TOKEN };
  // The first linearizable read waits (within its deadline) for the first leader.
  const kv = createClient(
    KVService,
    createConnectTransport({ baseUrl: members[0].url, httpVersion: "2" }),
  );
  await kv.range({ key: new TextEncoder().encode("ready") }, { timeoutMs: 30_000 });
});

/** Streaming commands started by the tests; any still running when the suite ends (a failed test's) are stopped. */
const streaming = new Set<ReturnType<typeof startCli>>();

afterAll(async () => {
  for (const child of streaming) child.kill("SIGKILL");
  await Promise.all(members.map((m) => m.kill("SIGTERM")));
  rmSync(dir, { recursive: true, force: true });
});

/** Starts a streaming command and resolves once it prints `ready` on stderr. */
async function startStreaming(args: string[], ready: string) {
  const child = startCli(args, env);
  streaming.add(child);
  const closed = new Promise<number | null>((r) => child.on("close", r));
  void closed.then(() => streaming.delete(child));
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => {
    stdout += d;
  });
  await new Promise<void>((resolve, reject) => {
    child.stderr.on("data", (d) => {
      stderr += d;
      if (stderr.includes(ready)) resolve();
    });
    void closed.then(() => reject(new Error(`exited before "${ready}": ${stderr}`)));
  });
  return { child, closed, stdout: () => stdout, stderr: () => stderr };
}

describe("kv get, put, del", () => {
  it("put then get prints the value; --json is proto JSON with base64 bytes", async () => {
    const put = await runCli(["kv", "put", "greeting", "hello", "--json"], env);
    expect(put.code).toBe(0);
    const [putRes] = jsonLines(put.stdout) as { header: { revision: string } }[];
    expect(Number(putRes.header.revision)).toBeGreaterThan(0);

    const plain = await runCli(["kv", "get", "greeting"], env);
    expect(plain).toMatchObject({ code: 0, stdout: "greeting\nhello\n" });

    const json = await runCli(["kv", "get", "greeting", "--json"], env);
    expect(jsonLines(json.stdout)).toMatchObject([
      {
        count: "1",
        more: false,
        kvs: [{ key: b64("greeting"), value: b64("hello"), modRevision: putRes.header.revision }],
      },
    ]);
  });

  it("get --rev reads an older value; a missing key prints nothing and exits 0", async () => {
    const first = await runCli(["kv", "put", "color", "red", "--json"], env);
    const rev = (jsonLines(first.stdout)[0] as { header: { revision: string } }).header.revision;
    expect((await runCli(["kv", "put", "color", "blue"], env)).stdout).toBe("OK\n");
    expect((await runCli(["kv", "get", "color"], env)).stdout).toBe("color\nblue\n");
    expect((await runCli(["kv", "get", "color", "--rev", rev], env)).stdout).toBe("color\nred\n");
    const missing = await runCli(["kv", "get", "no-such-key", "--json"], env);
    expect(missing.code).toBe(0);
    expect(jsonLines(missing.stdout)).toMatchObject([{ count: "0", kvs: [] }]);
  });

  it("get --prefix with --keys-only and --limit; del --prefix deletes them all", async () => {
    for (const k of ["a", "b", "c"]) await runCli(["kv", "put", `fruit/${k}`, k], env);
    await runCli(["kv", "put", "fruitless", "x"], env);
    const keys = await runCli(["kv", "get", "fruit/", "--prefix", "--keys-only"], env);
    expect(keys.stdout).toBe("fruit/a\nfruit/b\nfruit/c\n");
    const limited = await runCli(["kv", "get", "fruit/", "--prefix", "--limit", "2"], env);
    expect(limited.stdout).toBe("fruit/a\na\nfruit/b\nb\n");
    expect(limited.stderr).toBe("3 keys match, 2 shown: raise --limit\n");

    const del = await runCli(["kv", "del", "fruit/", "--prefix"], env);
    expect(del).toMatchObject({ code: 0, stdout: "3\n" });
    const after = await runCli(["kv", "get", "fruit", "--prefix", "--keys-only"], env);
    expect(after.stdout).toBe("fruitless\n");
    const json = await runCli(["kv", "del", "fruitless", "--json"], env);
    expect(jsonLines(json.stdout)).toMatchObject([{ deleted: "1" }]);
  });

  it("bytes that are not UTF-8 print as base64:...; --base64 takes and prints base64", async () => {
    const bin = b64(new Uint8Array([0xff, 0x00, 0xfe]));
    const put = await runCli(["kv", "put", b64("bin"), bin, "--base64"], env);
    expect(put.code).toBe(0);
    expect((await runCli(["kv", "get", "bin"], env)).stdout).toBe(`bin\nbase64:${bin}\n`);
    expect((await runCli(["kv", "get", b64("bin"), "--base64"], env)).stdout).toBe(
      `${b64("bin")}\n${bin}\n`,
    );
  });

  it("put without a value reads it from stdin, bytes as they are", async () => {
    const bytes = new Uint8Array([1, 2, 3, 0xff]);
    expect((await runCli(["kv", "put", "from-stdin"], env, bytes)).code).toBe(0);
    const res = await runCli(["kv", "get", "from-stdin", "--json"], env);
    expect(jsonLines(res.stdout)).toMatchObject([{ kvs: [{ value: b64(bytes) }] }]);
  });

  it("a first endpoint that is down is skipped, for reads and writes", async () => {
    const withDown = { ...env, QUARTET_ENDPOINTS: `${closedUrl},${endpoints}` };
    expect((await runCli(["kv", "put", "resilient", "yes"], withDown)).code).toBe(0);
    expect((await runCli(["kv", "get", "resilient"], withDown)).stdout).toBe("resilient\nyes\n");
  });
});

describe("kv watch", () => {
  it("prints each change from the moment it says watching, and exits after --count", async () => {
    const watch = await startStreaming(
      ["kv", "watch", "job/", "--prefix", "--prev-kv", "--count", "3"],
      "watching job/ from revision",
    );
    await runCli(["kv", "put", "job/1", "queued"], env);
    await runCli(["kv", "put", "job/1", "done"], env);
    await runCli(["kv", "del", "job/1"], env);
    expect(await watch.closed).toBe(0);
    expect(watch.stdout()).toBe(
      "PUT job/1 queued\nPUT job/1 done (was queued)\nDELETE job/1 (was done)\n",
    );
  });

  it("--rev replays history; --json prints one event per line", async () => {
    const put = await runCli(["kv", "put", "history", "v1", "--json"], env);
    const rev = (jsonLines(put.stdout)[0] as { header: { revision: string } }).header.revision;
    await runCli(["kv", "put", "history", "v2"], env);
    const res = await runCli(
      ["kv", "watch", "history", "--rev", rev, "--count", "2", "--json"],
      env,
    );
    expect(res.code).toBe(0);
    expect(jsonLines(res.stdout)).toMatchObject([
      { type: "EVENT_TYPE_PUT", kv: { key: b64("history"), value: b64("v1"), modRevision: rev } },
      { type: "EVENT_TYPE_PUT", kv: { value: b64("v2") } },
    ]);
  });

  it("Ctrl-C ends a watch with exit 0", async () => {
    const watch = await startStreaming(["kv", "watch", "quiet"], "watching quiet");
    watch.child.kill("SIGINT");
    expect(await watch.closed).toBe(0);
  });
});

describe("kv txn", () => {
  it("runs the success branch when the compares hold, the failure branch otherwise", async () => {
    await runCli(["kv", "put", "owner", "me"], env);
    const txn = 'value("owner") = "me"\n\nput config "v 2"\nget owner\n\nput config lost\n';
    const ok = await runCli(["kv", "txn"], env, txn);
    expect(ok).toMatchObject({ code: 0, stdout: "SUCCESS\n\nOK\n\nowner\nme\n" });
    expect((await runCli(["kv", "get", "config"], env)).stdout).toBe("config\nv 2\n");

    await runCli(["kv", "put", "owner", "you"], env);
    const failed = await runCli(["kv", "txn", "--json"], env, txn);
    expect(failed.code).toBe(0);
    expect(jsonLines(failed.stdout)).toMatchObject([{ succeeded: false, responses: [{}] }]);
    expect((await runCli(["kv", "get", "config"], env)).stdout).toBe("config\nlost\n");
  });

  it("compares on mod revision and version, and a txn without compares", async () => {
    const res = await runCli(["kv", "txn"], env, "\nput counter 1\n");
    expect(res.stdout).toBe("SUCCESS\n\nOK\n");
    const cas = await runCli(
      ["kv", "txn"],
      env,
      'version("counter") = "1"\nmod("counter") > "0"\n\ndel counter\n',
    );
    expect(cas.stdout).toBe("SUCCESS\n\n1\n");
  });

  it("a line it cannot parse exits 2 naming the line; the server's refusal exits 1", async () => {
    const bad = await runCli(["kv", "txn"], env, 'value("k") ~ "v"\n');
    expect(bad.code).toBe(2);
    expect(oneLine(bad.stderr)).toMatch(
      /^quartet: txn line 1: not a compare: .* \(invalid_argument\): /,
    );
    const op = await runCli(["kv", "txn"], env, "\nfrobnicate k\n");
    expect(oneLine(op.stderr)).toMatch(/txn line 2: unknown operation "frobnicate"/);
    const empty = await runCli(["kv", "txn"], env, "");
    expect(empty.code).toBe(2);
    const twice = await runCli(["kv", "txn"], env, "\nput k 1\nput k 2\n");
    expect(twice.code).toBe(1);
    expect(oneLine(twice.stderr)).toMatch(/\(invalid_argument\): fix the request and retry$/);
  });
});

describe("lease", () => {
  it("grant, attach a key, keepalive --once, revoke deletes the key", async () => {
    const grant = await runCli(["lease", "grant", "60", "--json"], env);
    expect(grant.code).toBe(0);
    const [{ id, ttl }] = jsonLines(grant.stdout) as { id: string; ttl: string }[];
    expect(ttl).toBe("60");
    expect((await runCli(["kv", "put", "leased", "v", "--lease", id], env)).code).toBe(0);

    const once = await runCli(["lease", "keepalive", id, "--once"], env);
    expect(once).toMatchObject({ code: 0, stdout: `lease ${id} keepalived with TTL(60s)\n` });

    const revoke = await runCli(["lease", "revoke", id], env);
    expect(revoke).toMatchObject({ code: 0, stdout: `lease ${id} revoked\n` });
    const gone = await runCli(["kv", "get", "leased", "--json"], env);
    expect(jsonLines(gone.stdout)).toMatchObject([{ count: "0" }]);

    for (const args of [
      ["lease", "keepalive", id, "--once"],
      ["lease", "revoke", id],
      ["kv", "put", "k", "v", "--lease", id],
    ]) {
      const res = await runCli(args, env);
      expect(res.code, args.join(" ")).toBe(1);
      expect(oneLine(res.stderr)).toMatch(new RegExp(`lease ${id} not found.*\\(not_found\\)`));
    }
  });

  it("keepalive renews until Ctrl-C, then exits 0", async () => {
    const grant = await runCli(["lease", "grant", "30"], env);
    const id = /lease (\d+) granted with TTL\(30s\)/.exec(grant.stdout)?.[1];
    expect(id).toBeDefined();
    const child = startCli(["lease", "keepalive", String(id)], env);
    const closed = new Promise<number | null>((r) => child.on("close", r));
    await new Promise<void>((resolve) => child.stdout.on("data", () => resolve()));
    child.kill("SIGINT");
    expect(await closed).toBe(0);
  });
});

describe("member", () => {
  it("list shows the three voters, as a table and as JSON", async () => {
    const table = await runCli(["member", "list"], env);
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID\s+NAME\s+PEER URLS\s+CLIENT URLS\s+LEARNER$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual(["1", "2", "3"]);
    const json = await runCli(["member", "list", "--json"], env);
    const [res] = jsonLines(json.stdout) as { members: { id: string; isLearner: boolean }[] }[];
    expect(res.members.map((m) => [m.id, m.isLearner])).toEqual([
      ["1", false],
      ["2", false],
      ["3", false],
    ]);
  });

  it("check finds every member with the same hash at one revision (exit 0), as a table and as JSON", async () => {
    const table = await runCli(["member", "check"], env);
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^MEMBER\s+URL\s+REVISION\s+HASH\s+COMPACTED AT$/);
    expect(lines.at(-1)).toMatch(/^the 3 members agree at revision \d+$/);
    const json = await runCli(["member", "check", "--json"], env);
    const [res] = jsonLines(json.stdout) as {
      agree: boolean;
      revision: string;
      members: { member: string; revision: string; hash: number }[];
    }[];
    expect(res.agree).toBe(true);
    expect(res.members.map((m) => m.member).sort()).toEqual(["1", "2", "3"]);
    expect(new Set(res.members.map((m) => m.revision))).toEqual(new Set([res.revision]));
    expect(new Set(res.members.map((m) => m.hash)).size).toBe(1);
  });

  it("sends the credential from --cluster-token-file; without one it is refused (exit 1)", async () => {
    const file = join(dir, "token");
    writeFileSync(file, `${TOKEN}\n`);
    const noToken = { QUARTET_ENDPOINTS: endpoints };
    const withFile = await runCli(["member", "list", "--cluster-token-file", file], noToken);
    expect(withFile.code).toBe(0);
    const refused = await runCli(["member", "list"], noToken);
    expect(refused.code).toBe(1);
    expect(oneLine(refused.stderr)).toMatch(
      /\(unauthenticated\): set QUARTET_CLUSTER_TOKEN or QUARTET_CLUSTER_TOKEN_FILE$/,
    );
  });

  it("add a learner, start it with the printed command, promote it, remove it", async () => {
    await runCli(["kv", "put", "before-the-learner", "v"], env);
    const url = `http://127.0.0.1:${await freePort()}`;
    const add = await runCli(["member", "add", "m4", "--peer-url", url, "--learner"], env);
    expect(add.code).toBe(0);
    const [added, start] = add.stdout.trimEnd().split("\n");
    expect(added).toBe("member 4 (m4) added as a learner");
    const peers = /--peers (\S+)/.exec(start)?.[1] ?? "";
    expect(start).toMatch(
      /^start it: npx node services\/consensus\/src\/main.ts --id 4 --join true --peers /,
    );
    expect(peers.split(",")).toEqual([...members.map((m, i) => `${i + 1}=${m.url}`), `4=${url}`]);
    const listed = await runCli(["member", "list", "--json"], env);
    expect(jsonLines(listed.stdout)).toMatchObject([
      { members: [{}, {}, {}, { id: "4", isLearner: true }] },
    ]);

    const fourth = await startServiceProcess(
      consensusEntry,
      [
        "--id",
        "4",
        "--join",
        "true",
        "--peers",
        peers,
        "--data-dir",
        join(dir, "4"),
        "--tick-ms",
        "20",
      ],
      { env: { QUARTET_CLUSTER_TOKEN: TOKEN, OTEL_SDK_DISABLED: "true" } },
    );
    try {
      // A linearizable read on the learner returns once it has applied the leader's log.
      const read = await runCli(
        ["kv", "get", "before-the-learner", "--endpoints", url, "--timeout", "30000"],
        env,
      );
      expect(read.stdout).toBe("before-the-learner\nv\n");
      const promote = await runCli(["member", "promote", "4"], env);
      expect(promote).toMatchObject({ code: 0, stdout: "member 4 promoted to voter\n" });
      const voters = await runCli(["member", "list"], env);
      expect(voters.stdout).toMatch(/\n4\s+member-4\s+\S+\s+\S+\s+false\n$/);

      const remove = await runCli(["member", "remove", "4", "--json"], env);
      expect(remove.code).toBe(0);
      const [{ members: left }] = jsonLines(remove.stdout) as { members: { id: string }[] }[];
      expect(left.map((m) => m.id)).toEqual(["1", "2", "3"]);
      // The removed member stops serving on its own.
      expect((await fourth.exited).signal).toBe(null);
    } finally {
      await fourth.kill("SIGKILL");
    }
  });

  it("the cluster's refusals of a membership change name their code and exit 1", async () => {
    for (const [args, code] of [
      [["member", "promote", "4"], "not_found"],
      [["member", "remove", "9"], "not_found"],
      [["member", "promote", "1"], "failed_precondition"],
      [["member", "add", "again", "--peer-url", members[0].url, "--learner"], "already_exists"],
    ] as const) {
      const res = await runCli([...args], env);
      expect(res.code, args.join(" ")).toBe(1);
      expect(oneLine(res.stderr)).toMatch(new RegExp(`^quartet: .* \\(${code}\\): `));
    }
  });

  it("add needs --learner and a URL; ids must be numbers (exit 2)", async () => {
    const cases = [
      ["member", "add", "m4", "--peer-url", closedUrl],
      ["member", "add", "m4", "--peer-url", "nonsense", "--learner"],
      ["member", "add", "m4", "--learner"],
      ["member", "promote", "four"],
      ["member", "remove", "0"],
    ];
    // Independent processes: run together, checked in order.
    const results = await Promise.all(cases.map((args) => runCli(args, env)));
    cases.forEach((args, i) => {
      const res = results[i];
      expect(res.code, args.join(" ")).toBe(2);
      expect(oneLine(res.stderr)).toMatch(/^quartet: .* \(invalid_argument\): /);
    });
  });
});

describe("errors and help", () => {
  it("an unreachable cluster exits 3 with one line, for every kind of command", async () => {
    const down = { QUARTET_ENDPOINTS: closedUrl, QUARTET_CLUSTER_TOKEN: TOKEN };
    const cases = [
      ["kv", "get", "k"],
      ["kv", "put", "k", "v"],
      ["kv", "del", "k"],
      ["kv", "watch", "k"],
      ["lease", "grant", "10"],
      ["lease", "keepalive", "1"],
      ["member", "list"],
    ];
    // Independent processes: run together, checked in order.
    const results = await Promise.all(cases.map((args) => runCli(args, down)));
    cases.forEach((args, i) => {
      const res = results[i];
      expect(res.code, args.join(" ")).toBe(3);
      expect(oneLine(res.stderr)).toBe(
        `quartet: cannot reach ${closedUrl} (unavailable): check the URL and that the service is running (quartet status)`,
      );
    });
    const txn = await runCli(["kv", "txn", "--endpoints", closedUrl], {}, "\nput k v\n");
    expect(txn.code).toBe(3);
  });

  it("bad arguments exit 2 with one line saying what to fix", async () => {
    const cases = [
      [["kv", "get", "k", "--limit", "0"], /--limit must be a positive integer/],
      [["kv", "get", "k", "--rev", "abc"], /--rev must be a decimal integer, got "abc"/],
      [["kv", "get", ""], /the key is empty/],
      [["kv", "put", "k", "v", "--lease", "x"], /--lease must be a decimal integer/],
      [["kv", "put", "k", "%%", "--base64"], /value is not base64/],
      [["kv", "watch", "k", "--count", "-1"], /--count must be a positive integer|unknown option/],
      [["lease", "grant", "ten"], /<ttl> must be a decimal integer/],
      [["lease", "revoke"], /missing required argument 'id'/],
      [["kv", "get", "k", "--endpoints", "ftp://x"], /not an http\(s\) URL: ftp:\/\/x/],
    ] as const;
    // Independent processes: run together, checked in order.
    const results = await Promise.all(cases.map(([args]) => runCli([...args], env)));
    cases.forEach(([args, message], i) => {
      const res = results[i];
      expect(res.code, args.join(" ")).toBe(2);
      expect(oneLine(res.stderr)).toMatch(message);
    });
  });

  it("a server-side refusal names the Connect code and exits 1", async () => {
    const res = await runCli(["kv", "get", "k", "--rev", "999999"], env);
    expect(res.code).toBe(1);
    expect(oneLine(res.stderr)).toMatch(/future revision.*\(out_of_range\)/);
  });

  it("a command group without its subcommand shows its help on stderr and exits 2", async () => {
    const results = await Promise.all(
      [["kv"], ["lease"], ["member"], ["queue"]].map((g) => runCli(g)),
    );
    for (const [i, group] of ["kv", "lease", "member", "queue"].entries()) {
      expect(results[i].code, group).toBe(2);
      expect(results[i].stdout).toBe("");
      expect(results[i].stderr).toMatch(
        new RegExp(`^Usage: quartet ${group} \\[options\\] \\[command\\]`),
      );
    }
  });

  it("--help works on every kv, lease and member command", async () => {
    const cases = [
      ["kv"],
      ["kv", "get"],
      ["kv", "put"],
      ["kv", "del"],
      ["kv", "watch"],
      ["kv", "txn"],
      ["lease"],
      ["lease", "grant"],
      ["lease", "keepalive"],
      ["lease", "revoke"],
      ["member"],
      ["member", "list"],
      ["member", "add"],
      ["member", "promote"],
      ["member", "remove"],
    ];
    // Independent processes: run together, checked in order.
    const results = await Promise.all(cases.map((cmd) => runCli([...cmd, "--help"])));
    cases.forEach((cmd, i) => {
      const res = results[i];
      expect(res.code, cmd.join(" ")).toBe(0);
      expect(res.stdout).toMatch(new RegExp(`^Usage: quartet ${cmd.join(" ")}`));
    });
  });
});

// Last: it kills a member (the cluster keeps a majority, and nothing runs after it).
describe("kv watch across a member's death", () => {
  it("goes on through another member when the one it watches through is killed", async () => {
    // The first endpoint is the one the watch starts on.
    const watch = await startStreaming(
      ["kv", "watch", "survivor", "--count", "2"],
      "watching survivor",
    );
    await runCli(["kv", "put", "survivor", "before"], env);
    await members[0].kill("SIGKILL");
    const after = await runCli(["kv", "put", "survivor", "after"], env);
    expect(after.code).toBe(0);
    expect(await watch.closed).toBe(0);
    expect(watch.stdout()).toBe("PUT survivor before\nPUT survivor after\n");
  });
});
