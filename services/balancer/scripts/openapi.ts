// Writes src/openapi.json, the OpenAPI 3 document of the REST tier, from the generated
// descriptors' google.api.http rules. Run by `npm run generate`; the output is committed.
import { writeFileSync } from "node:fs";
import { methodCatalog } from "../src/methods.ts";
import { openApiDocument } from "../src/openapi.ts";
import { restRules } from "../src/rest-rules.ts";

const out = new URL("../src/openapi.json", import.meta.url);
writeFileSync(out, `${JSON.stringify(openApiDocument(restRules(methodCatalog())), null, 2)}\n`);
console.log(`wrote ${out.pathname}`);
