import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, type ServiceProcess, startServiceProcess } from "@quartet/server/testing";
import { ConsensusClient } from "../../../services/consensus/src/client.ts";
import type { RegistryClient } from "./client.ts";

// By path, not by package: the consensus service depends on this package (it registers
// itself), so this package cannot depend on it back.
const consensusSrc = new URL("../../../services/consensus/src/", import.meta.url);
const memberMain = fileURLToPath(new URL("main.ts", consensusSrc));

/** A real 3-member consensus cluster on loopback (fast ticks), for tests of registry users. */
export class Cluster {
  readonly urls: string[];
  readonly #members: ServiceProcess[];
  readonly #dir: string;

  private constructor(urls: string[], members: ServiceProcess[], dir: string) {
    this.urls = urls;
    this.#members = members;
    this.#dir = dir;
  }

  static async start(): Promise<Cluster> {
    const dir = mkdtempSync(join(tmpdir(), "quartet-registry-"));
    const ports = [await freePort(), await freePort(), await freePort()];
    const urls = ports.map((p) => `http://127.0.0.1:${p}`);
    const peers = urls.map((u, i) => `${i + 1}=${u}`).join(",");
    const members = await Promise.all(
      urls.map((_, i) =>
        startServiceProcess(
          memberMain,
          [
            ...["--id", String(i + 1), "--peers", peers, "--data-dir", join(dir, String(i + 1))],
            ...["--tick-ms", "20"],
          ],
          {
            env: {
              QUARTET_CLUSTER_TOKEN: "registry-test-token-0123456789",
              OTEL_SDK_DISABLED: "true",
            },
          },
        ),
      ),
    );
    return new Cluster(urls, members, dir);
  }

  /** A consensus client of the members (the one every service uses). */
  client(): RegistryClient {
    return new ConsensusClient({ endpoints: this.urls });
  }

  async stop(): Promise<void> {
    await Promise.all(this.#members.map((m) => m.kill("SIGKILL")));
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
