// Checks proto/ for breaking changes against main as it was before this change: origin/main
// when this checkout has it and is ahead of it, otherwise the parent commit.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const git = (...args: string[]) => spawnSync("git", args, { encoding: "utf8" }).stdout.trim();
const head = git("rev-parse", "HEAD");
const originMain = git("rev-parse", "--verify", "--quiet", "origin/main");
const base =
  originMain && originMain !== head
    ? originMain
    : git("rev-parse", "--verify", "--quiet", "HEAD~1");
if (!base) {
  console.log("buf breaking: no earlier commit to compare with");
  process.exit(0);
}
if (!git("ls-tree", "-d", base, "proto")) {
  console.log(`buf breaking: ${base.slice(0, 12)} has no proto/ yet`);
  process.exit(0);
}
// The base's proto/ and buf.yaml, beside this checkout's node_modules: the standard protos
// (google/api) come from npm packages that a git ref does not hold.
const against = mkdtempSync(join(tmpdir(), "quartet-buf-breaking-"));
try {
  const files = ["proto", "buf.yaml"].filter((path) => git("ls-tree", base, path));
  execFileSync("sh", ["-c", `git archive ${base} ${files.join(" ")} | tar -x -C ${against}`]);
  symlinkSync(join(process.cwd(), "node_modules"), join(against, "node_modules"));
  execFileSync("buf", ["breaking", "--against", against], { stdio: "inherit" });
} finally {
  rmSync(against, { recursive: true, force: true });
}
console.log(`buf breaking: no breaking change against ${base.slice(0, 12)}`);
