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
