// Writes src/openapi.json, the OpenAPI 3 document of the REST tier, from the generated
// descriptors' google.api.http rules. Run by `npm run generate`; the output is committed.
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { methodCatalog } from "../src/methods.ts";
import { openApiDocument } from "../src/openapi.ts";
import { restRules } from "../src/rest-rules.ts";

const out = new URL("../src/openapi.json", import.meta.url);
writeFileSync(out, `${JSON.stringify(openApiDocument(restRules(methodCatalog())), null, 2)}\n`);
// Formatted as the repo formats JSON, so a lint run leaves it unchanged.
const biome = fileURLToPath(new URL("../../../node_modules/.bin/biome", import.meta.url));
execFileSync(biome, ["format", "--write", fileURLToPath(out)], { stdio: "ignore" });
console.log(`wrote ${out.pathname}`);
