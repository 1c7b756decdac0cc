// The floor of a replicated, durable put on Node: what any store written on this runtime pays
// before it does anything of its own (bench/kv, BENCH_FLOOR=1). No Raft, no MVCC, no Connect:
//
// - leader: gRPC over node:http2's stream API; puts that arrive while its log syncs wait for
//   the next batch; each batch is appended and fdatasync'd (one sync per batch) while it is
//   sent to both followers over TCP; a put is answered, in arrival order, once its own sync
//   and one follower's acknowledgement cover it;
// - follower: appends what it receives and fdatasyncs it (group commit), then acknowledges
//   the newest put that sync covered.
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
/**
 * A frame on a replication link: a tag and a length (8 bytes), then that many bytes. The
 * leader tags each batch with the number of its newest put; an acknowledgement is a frame
 * with no bytes, tagged with the newest put the follower's sync covered.
 */
const frameHeaderBytes = 8;

function frame(tag: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(frameHeaderBytes);
  header.writeUInt32BE(tag, 0);
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}

function readFrames(socket: net.Socket, onFrame: (tag: number, body: Buffer) => void): void {
  let buffered: Buffer = Buffer.alloc(0);
  socket.on("data", (chunk: Buffer) => {
    buffered = buffered.length > 0 ? Buffer.concat([buffered, chunk]) : chunk;
    while (buffered.length >= frameHeaderBytes) {
      const end = frameHeaderBytes + buffered.readUInt32BE(4);
      if (buffered.length < end) break;
      onFrame(buffered.readUInt32BE(0), buffered.subarray(frameHeaderBytes, end));
      buffered = buffered.subarray(end);
    }
  });
}

/**
 * Appends what it is given to the log, one write and one fdatasync per batch: what arrives
 * while a sync runs makes the next batch. `starting` is told of each batch as its write
 * begins, `synced` of the newest tag a finished sync covered.
 */
function groupCommit(
  synced: (tag: number) => void,
  starting?: (batch: Buffer[], tag: number) => void,
): (data: Buffer, tag: number) => void {
  let waiting: Buffer[] = [];
  let newest = 0;
  let syncing = false;
  const flush = () => {
    if (syncing || waiting.length === 0) return;
    syncing = true;
    const batch = waiting;
    const tag = newest;
    waiting = [];
    starting?.(batch, tag);
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
    const append = groupCommit((tag) => socket.write(frame(tag)));
    readFrames(socket, (tag, body) => append(body, tag));
  });
  server.listen(0, "127.0.0.1", () => listening(server));
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
  // Puts are numbered as they arrive; `waiting` holds those not answered yet, in order.
  const waiting: http2.ServerHttp2Stream[] = [];
  let arrived = 0;
  let answered = 0;
  let synced = 0;
  let acknowledged = 0;
  const answerDone = () => {
    for (const upTo = Math.min(synced, acknowledged); answered < upTo; answered++)
      answer(waiting.shift()!);
  };
  const followers = followerPorts.map((port) => {
    const socket = net.connect({ port: Number(port), host: "127.0.0.1", noDelay: true });
    readFrames(socket, (tag) => {
      acknowledged = Math.max(acknowledged, tag);
      answerDone();
    });
    return socket;
  });
  const append = groupCommit(
    (tag) => {
      synced = tag;
      answerDone();
    },
    (batch, tag) => {
      const replicated = frame(tag, Buffer.concat(batch));
      for (const socket of followers) socket.write(replicated);
    },
  );

  const server = http2.createServer();
  server.on("stream", (stream) => {
    const chunks: Buffer[] = [];
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", () => {
      waiting.push(stream);
      append(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks), ++arrived);
    });
  });
  server.listen(0, "127.0.0.1", () => listening(server as unknown as net.Server));
}

if (role === "leader") leader();
else follower();
