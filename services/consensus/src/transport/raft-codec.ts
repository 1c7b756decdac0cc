import { create } from "@bufbuild/protobuf";
import {
  ConfStateSchema,
  EntrySchema,
  EntryType,
  type ConfState as ProtoConfState,
  type Entry as ProtoEntry,
  type SnapshotMetadata as ProtoSnapshotMetadata,
  type RaftMessage,
  RaftMessageSchema,
  SnapshotMetadataSchema,
} from "@quartet/proto/quartet/raft/v1/raft_pb";
import type { ConfState, Entry, Message, NodeId, SnapshotMetadata } from "@quartet/raft";

/** The Raft core's message as it travels on the wire (the addresses travel with the batch). */
export function encodeMessage(m: Message): RaftMessage {
  const term = BigInt(m.term);
  switch (m.type) {
    case "app":
      return create(RaftMessageSchema, {
        term,
        body: {
          case: "append",
          value: {
            index: BigInt(m.index),
            logTerm: BigInt(m.logTerm),
            entries: m.entries.map(encodeEntry),
            commit: BigInt(m.commit),
          },
        },
      });
    case "appResp":
      return create(RaftMessageSchema, {
        term,
        body: {
          case: "appendResponse",
          value: {
            index: BigInt(m.index),
            reject: m.reject,
            rejectHint: BigInt(m.rejectHint),
            logTerm: BigInt(m.logTerm),
          },
        },
      });
    case "vote":
    case "preVote":
      return create(RaftMessageSchema, {
        term,
        body: {
          case: "vote",
          value: {
            preVote: m.type === "preVote",
            index: BigInt(m.index),
            logTerm: BigInt(m.logTerm),
            transfer: m.transfer,
          },
        },
      });
    case "voteResp":
    case "preVoteResp":
      return create(RaftMessageSchema, {
        term,
        body: {
          case: "voteResponse",
          value: { preVote: m.type === "preVoteResp", reject: m.reject },
        },
      });
    case "heartbeat":
      return create(RaftMessageSchema, {
        term,
        body: {
          case: "heartbeat",
          value: { commit: BigInt(m.commit), context: m.context, sentAt: BigInt(m.sentAt) },
        },
      });
    case "heartbeatResp":
      return create(RaftMessageSchema, {
        term,
        body: {
          case: "heartbeatResponse",
          value: { context: m.context, sentAt: BigInt(m.sentAt) },
        },
      });
    case "snap":
      return create(RaftMessageSchema, {
        term,
        body: {
          case: "snapshotChunk",
          value: {
            metadata: encodeMetadata(m.metadata),
            offset: BigInt(m.offset),
            totalBytes: BigInt(m.totalBytes),
            data: m.data,
          },
        },
      });
    case "snapResp":
      return create(RaftMessageSchema, {
        term,
        body: {
          case: "snapshotResponse",
          value: { index: BigInt(m.index), offset: BigInt(m.offset) },
        },
      });
    case "timeoutNow":
      return create(RaftMessageSchema, { term, body: { case: "timeoutNow", value: {} } });
    case "readIndex":
      return create(RaftMessageSchema, {
        term,
        body: { case: "readIndex", value: { context: m.context } },
      });
    case "readIndexResp":
      return create(RaftMessageSchema, {
        term,
        body: { case: "readIndexResponse", value: { index: BigInt(m.index), context: m.context } },
      });
  }
}

/** A message from the wire, addressed as its batch was; undefined for one with no body. */
export function decodeMessage(p: RaftMessage, from: NodeId, to: NodeId): Message | undefined {
  const base = { from, to, term: Number(p.term) };
  const b = p.body;
  switch (b.case) {
    case "append":
      return {
        ...base,
        type: "app",
        index: Number(b.value.index),
        logTerm: Number(b.value.logTerm),
        entries: b.value.entries.map(decodeEntry),
        commit: Number(b.value.commit),
      };
    case "appendResponse":
      return {
        ...base,
        type: "appResp",
        index: Number(b.value.index),
        reject: b.value.reject,
        rejectHint: Number(b.value.rejectHint),
        logTerm: Number(b.value.logTerm),
      };
    case "vote":
      return {
        ...base,
        type: b.value.preVote ? "preVote" : "vote",
        index: Number(b.value.index),
        logTerm: Number(b.value.logTerm),
        transfer: b.value.transfer,
      };
    case "voteResponse":
      return {
        ...base,
        type: b.value.preVote ? "preVoteResp" : "voteResp",
        reject: b.value.reject,
      };
    case "heartbeat":
      return {
        ...base,
        type: "heartbeat",
        commit: Number(b.value.commit),
        context: b.value.context,
        sentAt: Number(b.value.sentAt),
      };
    case "heartbeatResponse":
      return {
        ...base,
        type: "heartbeatResp",
        context: b.value.context,
        sentAt: Number(b.value.sentAt),
      };
    case "snapshotChunk": {
      const md = b.value.metadata;
      if (md === undefined) return undefined;
      return {
        ...base,
        type: "snap",
        metadata: decodeMetadata(md),
        offset: Number(b.value.offset),
        totalBytes: Number(b.value.totalBytes),
        data: b.value.data,
      };
    }
    case "snapshotResponse":
      return {
        ...base,
        type: "snapResp",
        index: Number(b.value.index),
        offset: Number(b.value.offset),
      };
    case "timeoutNow":
      return { ...base, type: "timeoutNow" };
    case "readIndex":
      return { ...base, type: "readIndex", context: b.value.context };
    case "readIndexResponse":
      return {
        ...base,
        type: "readIndexResp",
        index: Number(b.value.index),
        context: b.value.context,
      };
    case undefined:
      return undefined;
  }
}

function encodeEntry(e: Entry): ProtoEntry {
  return create(EntrySchema, {
    term: BigInt(e.term),
    index: BigInt(e.index),
    type: e.type === "confChange" ? EntryType.CONF_CHANGE : EntryType.NORMAL,
    data: e.data,
  });
}

function decodeEntry(e: ProtoEntry): Entry {
  return {
    term: Number(e.term),
    index: Number(e.index),
    type: e.type === EntryType.CONF_CHANGE ? "confChange" : "normal",
    data: e.data,
  };
}

function encodeMetadata(md: SnapshotMetadata): ProtoSnapshotMetadata {
  return create(SnapshotMetadataSchema, {
    index: BigInt(md.index),
    term: BigInt(md.term),
    confState: encodeConfState(md.confState),
  });
}

function decodeMetadata(md: ProtoSnapshotMetadata): SnapshotMetadata {
  return {
    index: Number(md.index),
    term: Number(md.term),
    confState: decodeConfState(md.confState),
  };
}

function encodeConfState(c: ConfState): ProtoConfState {
  const ids = (list: number[]) => list.map((id) => BigInt(id));
  return create(ConfStateSchema, {
    voters: ids(c.voters),
    learners: ids(c.learners),
    votersOutgoing: ids(c.votersOutgoing),
    learnersNext: ids(c.learnersNext),
    autoLeave: c.autoLeave,
  });
}

function decodeConfState(c: ProtoConfState | undefined): ConfState {
  const ids = (list: bigint[] | undefined) => (list ?? []).map((id) => Number(id));
  return {
    voters: ids(c?.voters),
    learners: ids(c?.learners),
    votersOutgoing: ids(c?.votersOutgoing),
    learnersNext: ids(c?.learnersNext),
    autoLeave: c?.autoLeave ?? false,
  };
}
