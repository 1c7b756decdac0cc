import { describe, expect, it } from "vitest";
import { methodCatalog } from "../src/methods.ts";
import { matchRule, parseTemplate, type RestRule } from "../src/rest-rules.ts";

// Rules shaped like the KV and broker annotations other services add: matching is generic.
const compute = methodCatalog().get("/quartet.worker.v1.WorkerService/Compute")!.method;
const rule = (verb: RestRule["verb"], template: string): RestRule => ({
  verb,
  template,
  segments: parseTemplate(template),
  body: "",
  method: compute as RestRule["method"],
  idempotent: false,
});
const rules = [
  rule("PUT", "/v1/kv/{key}"),
  rule("GET", "/v1/kv/{key}"),
  rule("POST", "/v1/queues/{queue}/messages"),
  rule("GET", "/v1/files/{path=**}"),
];

describe("REST path templates", () => {
  it("binds one-segment variables, still percent-encoded (the field decides how they decode)", () => {
    const m = matchRule(rules, "GET", "/v1/kv/a%2Fb");
    expect(m?.rule.template).toBe("/v1/kv/{key}");
    expect(m?.variables.get("key")).toBe("a%2Fb");
    expect(matchRule(rules, "POST", "/v1/queues/jobs/messages")?.variables.get("queue")).toBe(
      "jobs",
    );
  });

  it("binds ** to the rest of the path", () => {
    expect(matchRule(rules, "GET", "/v1/files/a/b/c")?.variables.get("path")).toBe("a/b/c");
  });

  it("the verb, the literal segments and the segment count must all match", () => {
    expect(matchRule(rules, "DELETE", "/v1/kv/a")).toBeUndefined();
    expect(matchRule(rules, "GET", "/v1/kv/a/b")).toBeUndefined();
    expect(matchRule(rules, "GET", "/v1/kv/")).toBeUndefined();
    expect(matchRule(rules, "POST", "/v1/queues/jobs")).toBeUndefined();
  });
});
