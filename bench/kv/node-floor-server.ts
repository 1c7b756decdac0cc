// The floor of a replicated, durable put on Node: what any store written on this runtime pays
// before it does anything of its own (bench/kv, BENCH_FLOOR=1). No Raft, no MVCC, no Connect:
//
// - leader: gRPC over node:http2's stream API; puts that arrive while its log syncs wait for
//   the next batch; each batch is appended and fdatasync'd (one sync per batch) while it is
//   sent to both followers over TCP, and answered once its own sync and one follower's
//   acknowledgement are in, in batch order;
// - follower: appends what it receives and fdatasyncs it (group commit), then acknowledges
//   the newest batch that sync covered.
//
// `node node-floor-server.ts follower <log>` or `... leader <log> <follower port> <follower port>`;
// each logs {"msg":"listening","url":...} as the services do.
import fs from "node:fs";
import http2 from "node:http2";
import net from "node:net";

const [role, logPath, ...followerPorts] = process.argv.slice(2);
if ((role !== "leader" && role !== "follower") || logPath === undefined)
  throw new Error("usage: node-floor-server.ts follower <log> | leader <log> <port> <port>");
const fd = fs.openSync(logPath, "a");
const listening = (server: net.Server) => {
  const { port } = server.address() as net.AddressInfo;
  console.log(JSON.stringify({ msg: "listening", url: `http://127.0.0.1:${port}` }));
};
/** Frames on the replication link: batch number and length (8 bytes), then the batch. */
const frameHeaderBytes = 8;

/** Appends and syncs what it is given, a sync at a time; `synced` gets the newest tag covered. */
function groupCommit(synced: (tag: number) => void): (data: Buffer, tag: number) => void {
  let waiting: Buffer[] = [];
  let newest = 0;
  let syncing = false;
  const flush = () => {
    if (syncing || waiting.length === 0) return;
    syncing = true;
    const batch = waiting;
    const tag = newest;
    waiting = [];
    fs.writev(fd, batch, (error) => {
      if (error) throw error;
      fs.fdatasync(fd, (syncError) => {
        if (syncError) throw syncError;
        syncing = false;
        synced(tag);
        flush();
      });
    });
  };
  return (data, tag) => {
    waiting.push(data);
    newest = tag;
    flush();
  };
}

function follower(): void {
  const server = net.createServer({ noDelay: true }, (socket) => {
    const append = groupCommit((tag) => {
      const ack = Buffer.alloc(4);
      ack.writeUInt32BE(tag);
      socket.write(ack);
    });
    let buffered: Buffer = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      buffered = buffered.length > 0 ? Buffer.concat([buffered, chunk]) : chunk;
      while (buffered.length >= frameHeaderBytes) {
        const end = frameHeaderBytes + buffered.readUInt32BE(4);
        if (buffered.length < end) break;
        append(buffered.subarray(frameHeaderBytes, end), buffered.readUInt32BE(0));
        buffered = buffered.subarray(end);
      }
    });
  });
  server.listen(0, "127.0.0.1", () => listening(server));
}

interface Batch {
  readonly number: number;
  readonly streams: http2.ServerHttp2Stream[];
  synced: boolean;
  acknowledged: boolean;
}

function leader(): void {
  const emptyMessage = Buffer.from([0, 0, 0, 0, 0]);
  const answer = (stream: http2.ServerHttp2Stream) => {
    if (stream.destroyed) return;
    stream.respond(
      { ":status": 200, "content-type": "application/grpc" },
      { waitForTrailers: true },
    );
    stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    stream.end(emptyMessage);
  };
  const inFlight: Batch[] = [];
  const answerDone = () => {
    while (inFlight[0]?.synced && inFlight[0].acknowledged) {
      for (const stream of inFlight.shift()!.streams) answer(stream);
    }
  };
  const followers = followerPorts.map((port) => {
    const socket = net.connect({ port: Number(port), host: "127.0.0.1", noDelay: true });
    let buffered: Buffer = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      buffered = buffered.length > 0 ? Buffer.concat([buffered, chunk]) : chunk;
      for (; buffered.length >= 4; buffered = buffered.subarray(4)) {
        const upTo = buffered.readUInt32BE(0);
        for (const batch of inFlight) if (batch.number <= upTo) batch.acknowledged = true;
      }
      answerDone();
    });
    return socket;
  });

  const appendAndSync = (data: Buffer, done: () => void) =>
    fs.writev(fd, [data], (error) => {
      if (error) throw error;
      fs.fdatasync(fd, (syncError) => {
        if (syncError) throw syncError;
        done();
      });
    });
  let arrived: { stream: http2.ServerHttp2Stream; data: Buffer }[] = [];
  let batches = 0;
  let syncing = false;
  const startBatch = () => {
    if (syncing || arrived.length === 0) return;
    syncing = true;
    const batch: Batch = {
      number: ++batches,
      streams: arrived.map((a) => a.stream),
      synced: false,
      acknowledged: false,
    };
    const data = Buffer.concat(arrived.map((a) => a.data));
    arrived = [];
    inFlight.push(batch);
    const header = Buffer.alloc(frameHeaderBytes);
    header.writeUInt32BE(batch.number, 0);
    header.writeUInt32BE(data.length, 4);
    for (const socket of followers) socket.write(Buffer.concat([header, data]));
    appendAndSync(data, () => {
      syncing = false;
      batch.synced = true;
      answerDone();
      startBatch();
    });
  };

  const server = http2.createServer();
  server.on("stream", (stream) => {
    const chunks: Buffer[] = [];
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", () => {
      arrived.push({ stream, data: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) });
      startBatch();
    });
  });
  server.listen(0, "127.0.0.1", () => listening(server as unknown as net.Server));
}

if (role === "leader") leader();
else follower();
