// `npm run bench -- <name>` runs bench/<name>/index.ts; with no name, every bench in turn.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const all = readdirSync(here, { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join(here, d.name, "index.ts")))
  .map((d) => d.name)
  .sort();
const wanted = process.argv.slice(2);
for (const name of wanted) {
  if (!all.includes(name)) {
    console.error(`unknown bench "${name}"; available: ${all.join(", ")}`);
    process.exit(2);
  }
}
let failed = 0;
for (const name of wanted.length > 0 ? wanted : all) {
  console.log(`\n=== bench/${name}`);
  const run = spawnSync(process.execPath, ["--expose-gc", join(here, name, "index.ts")], {
    stdio: "inherit",
  });
  if (run.status !== 0) failed++;
}
process.exit(failed > 0 ? 1 : 0);
