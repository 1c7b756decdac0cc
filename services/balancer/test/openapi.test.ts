import { readFileSync } from "node:fs";
import { Validator } from "@seriousme/openapi-schema-validator";
import { describe, expect, it } from "vitest";
import { methodCatalog } from "../src/methods.ts";
import { openApiDocument } from "../src/openapi.ts";
import { restRules } from "../src/rest-rules.ts";

describe("the OpenAPI document of the REST tier", () => {
  it("validates against the OpenAPI 3 schema", async () => {
    const doc = JSON.parse(readFileSync(new URL("../src/openapi.json", import.meta.url), "utf8"));
    const result = await new Validator().validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it("the committed document is what the protos generate now (run npm run generate)", () => {
    const doc = JSON.parse(readFileSync(new URL("../src/openapi.json", import.meta.url), "utf8"));
    expect(doc).toEqual(JSON.parse(JSON.stringify(openApiDocument(restRules(methodCatalog())))));
  });
});
