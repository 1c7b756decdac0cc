// Checks proto/ for breaking changes against main as it was before this change: origin/main
// when this checkout has it and is ahead of it, otherwise the parent commit.
import { execFileSync, spawnSync } from "node:child_process";

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
execFileSync("buf", ["breaking", "--against", `.git#ref=${base}`], { stdio: "inherit" });
console.log(`buf breaking: no breaking change against ${base.slice(0, 12)}`);
