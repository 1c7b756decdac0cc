// Fails when the committed generated code differs from a fresh `buf generate`.
import { execFileSync } from "node:child_process";

const run = (cmd: string, args: string[]) =>
  execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
run("buf", ["generate"]);
const drift = run("git", ["status", "--porcelain", "--", "packages/proto"]).trim();
if (drift) {
  console.error(`generated code is out of date; run \`npm run generate\` and commit:\n${drift}`);
  process.exit(1);
}
console.log("generated code matches buf generate");
