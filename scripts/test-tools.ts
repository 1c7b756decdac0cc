// `npm test` needs a few Debian programs that npm cannot provide: protoc and Python's protobuf
// (the client-generation test) and Chromium (the browser tests drive it with playwright-core,
// which downloads no browser). Installs whichever is missing, so `npm ci && npm test` works on a
// fresh machine; where apt-get is absent, says what to install instead of failing later.
import { execFileSync, spawnSync } from "node:child_process";

const needed: Array<{ what: string; present: () => boolean; packages: string[] }> = [
  {
    what: "protoc",
    present: () => spawnSync("which", ["protoc"]).status === 0,
    packages: ["protobuf-compiler"],
  },
  {
    what: "python3 with google.protobuf",
    present: () => spawnSync("/usr/bin/python3", ["-c", "import google.protobuf"]).status === 0,
    packages: ["python3-protobuf"],
  },
  {
    what: "chromium",
    present: () => spawnSync("which", ["chromium"]).status === 0,
    packages: ["chromium"],
  },
];

const missing = needed.filter((tool) => !tool.present());
if (missing.length > 0) {
  const packages = missing.flatMap((tool) => tool.packages);
  if (spawnSync("which", ["apt-get"]).status !== 0) {
    console.error(
      `npm test needs ${missing.map((tool) => tool.what).join(", ")}: install the Debian packages ${packages.join(" ")}`,
    );
    process.exit(1);
  }
  console.log(`installing ${packages.join(", ")} (apt-get) for the tests`);
  execFileSync("apt-get", ["update", "-qq"], { stdio: "inherit" });
  execFileSync("apt-get", ["install", "-y", "-qq", ...packages], { stdio: "inherit" });
}

// The deploy test renders deploy/k8s with the real kustomize (scripts/test/deploy.test.ts). No
// Debian package provides one that can: bookworm's kubernetes-client is kubectl 1.20, whose
// kustomize v2 fails to load our overlay's base. So this only checks for kustomize v5 (a
// `kustomize` binary, or the one inside kubectl 1.27 and later) and says what to install.
function kustomizeMajor(): number | undefined {
  const standalone = spawnSync("kustomize", ["version"], { encoding: "utf8" });
  const inKubectl = spawnSync("kubectl", ["version", "--client", "-o", "json"], {
    encoding: "utf8",
  });
  const version =
    (standalone.status === 0 ? standalone.stdout : undefined) ??
    (inKubectl.status === 0
      ? (JSON.parse(inKubectl.stdout) as { kustomizeVersion?: string }).kustomizeVersion
      : undefined);
  const major = version?.match(/v(\d+)\./)?.[1];
  return major === undefined ? undefined : Number(major);
}
// Only the deploy test needs it: say so up front, and let every other test run.
if ((kustomizeMajor() ?? 0) < 5) {
  console.error(
    "warning: the deploy test needs kustomize v5 to render deploy/k8s and will fail: install kubectl 1.27 or later (Kubernetes' apt repository, pkgs.k8s.io) or a kustomize v5 binary on PATH; Debian's kubernetes-client (kubectl 1.20) is too old",
  );
}
