// The README's example, verbatim between the markers: three RawNodes driven by hand.
import { expect, it } from "vitest";
import { decodeConfChange, MemoryStorage, type Message, RawNode } from "../src/index.ts";

it("the README example drives a 3-node cluster to apply a proposal everywhere", () => {
  // --- README example start
  const ids = [1, 2, 3];
  const storage = new Map(ids.map((id) => [id, MemoryStorage.bootstrap({ voters: ids })]));
  const nodes = new Map(ids.map((id) => [id, new RawNode({ id, storage: storage.get(id)! })]));
  const applied = new Map(ids.map((id) => [id, [] as string[]]));
  const network: Message[] = [];

  function handleReady(id: number, node: RawNode): void {
    const rd = node.ready();
    const st = storage.get(id)!;
    if (rd.snapshot) st.applySnapshot(rd.snapshot); // 1. persist (fsync in real life)...
    st.append(rd.entries);
    if (rd.hardState) st.setHardState(rd.hardState);
    network.push(...rd.messages); // 2. ...then send
    for (const e of rd.committedEntries) {
      // 3. apply committed entries in order
      if (e.type === "confChange") node.applyConfChange(decodeConfChange(e.data));
      else if (e.data.length > 0) applied.get(id)!.push(new TextDecoder().decode(e.data));
    }
    node.advance();
  }

  function runUntilQuiet(): void {
    for (let busy = true; busy; ) {
      busy = false;
      for (const [id, node] of nodes)
        while (node.hasReady()) {
          handleReady(id, node);
          busy = true;
        }
      for (const m of network.splice(0)) nodes.get(m.to)!.step(m);
    }
  }

  nodes.get(1)!.campaign(); // or call tick() on every node until one times out
  runUntilQuiet();
  const result = nodes.get(1)!.propose(new TextEncoder().encode("hello"));
  runUntilQuiet();
  // result: { ok: true, index: 3, term: 2 }; every node applied "hello"
  // --- README example end
  expect(result).toEqual({ ok: true, index: 3, term: 2 });
  for (const id of ids) expect(applied.get(id)).toEqual(["hello"]);
  expect(nodes.get(2)!.propose(new Uint8Array(1))).toMatchObject({
    ok: false,
    reason: "not-leader",
    leaderId: 1,
  });
});
