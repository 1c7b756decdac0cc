// One side of the balancer bench, in its own process: Compute calls in a closed loop through
// either the balanced transport or plain transports rotated by hand, to the worker URLs given.
// Prints one JSON line: calls, elapsed ms and this process's CPU time while measuring.
//   node bench/balancer/client.ts <balanced|plain> <warmup ms> <measure ms> <url>...
import { createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { createBalancedTransport, staticResolver } from "@quartet/balancer";
import { WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";

const CONCURRENCY = 32;
const [side, warmupArg, measureArg, ...urls] = process.argv.slice(2);
if ((side !== "balanced" && side !== "plain") || urls.length === 0) {
  throw new Error("usage: client.ts <balanced|plain> <warmup ms> <measure ms> <url>...");
}

type WorkerClient = ReturnType<typeof createClient<typeof WorkerService>>;
let next: () => WorkerClient;
let close = async () => {};
if (side === "balanced") {
  const balanced = createBalancedTransport({
    resolver: staticResolver(urls.map((address, i) => ({ id: `w${i + 1}`, address }))),
    picker: "round_robin",
  });
  const client = createClient(WorkerService, balanced);
  next = () => client;
  close = () => balanced.close();
} else {
  const plain: Transport[] = urls.map((baseUrl) =>
    createConnectTransport({ baseUrl, httpVersion: "2" }),
  );
  const clients = plain.map((t) => createClient(WorkerService, t));
  let turn = 0;
  next = () => clients[turn++ % clients.length]!;
}

/** `CONCURRENCY` callers, each issuing Compute calls back to back for `ms`. */
async function closedLoop(ms: number) {
  const end = performance.now() + ms;
  let calls = 0;
  const cpu = process.cpuUsage();
  const start = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        await next().compute({ iterations: 1, input: "bench" });
        calls++;
      }
    }),
  );
  const used = process.cpuUsage(cpu);
  return { calls, ms: performance.now() - start, cpuUs: used.user + used.system };
}

await closedLoop(Number(warmupArg));
console.log(JSON.stringify(await closedLoop(Number(measureArg))));
await close();
