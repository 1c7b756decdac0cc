import { type DescMethodUnary, getOption, hasOption } from "@bufbuild/protobuf";
import { http } from "@quartet/proto/google/api/annotations_pb";
import type { HttpRule } from "@quartet/proto/google/api/http_pb";
import type { MethodInfo } from "./methods.ts";

/** One REST binding of a method: `POST /v1/compute`, `GET /v1/kv/{key}`. */
export interface RestRule {
  readonly verb: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  readonly template: string;
  readonly segments: readonly Segment[];
  /** "*" (the whole message), a field name, or "" (no body: everything else from the query). */
  readonly body: string;
  readonly method: DescMethodUnary;
  readonly idempotent: boolean;
}

/** A literal path segment, a variable bound to one segment, or one bound to the rest. */
type Segment =
  | { kind: "literal"; value: string }
  | { kind: "variable"; field: string; rest: boolean };

function bindingsOf(rule: HttpRule): HttpRule[] {
  return [rule, ...rule.additionalBindings];
}

/** The REST rules of every `google.api.http`-annotated unary method in the catalog. */
export function restRules(methods: ReadonlyMap<string, MethodInfo>): RestRule[] {
  const rules: RestRule[] = [];
  for (const info of methods.values()) {
    if (info.method.methodKind !== "unary" || !hasOption(info.method, http)) continue;
    for (const binding of bindingsOf(getOption(info.method, http))) {
      const { case: verb, value } = binding.pattern;
      if (!verb || verb === "custom") continue;
      rules.push({
        verb: verb.toUpperCase() as RestRule["verb"],
        template: value,
        segments: parseTemplate(value),
        body: binding.body,
        method: info.method as DescMethodUnary,
        idempotent: info.idempotent,
      });
    }
  }
  return rules;
}

/** `/v1/kv/{key}` or `/v1/{name=queues/*}`: literal segments and variables. */
export function parseTemplate(template: string): Segment[] {
  const parts = template.replace(/^\//, "").split(/\/(?![^{]*\})/);
  return parts.map((part) => {
    const m = /^\{([\w.]+)(?:=(.*))?\}$/.exec(part);
    if (!m) return { kind: "literal", value: part };
    return { kind: "variable", field: m[1]!, rest: (m[2] ?? "*").includes("**") };
  });
}

/**
 * The rule matching a request, with its path variables as they are in the path, still
 * percent-encoded (a `**` variable's segments joined by "/"): how they decode depends on the
 * field (see rest-params.ts). Undefined when no rule matches.
 */
export function matchRule(
  rules: readonly RestRule[],
  verb: string,
  path: string,
): { rule: RestRule; variables: Map<string, string> } | undefined {
  const parts = path.replace(/^\//, "").split("/");
  for (const rule of rules) {
    if (rule.verb !== verb) continue;
    const variables = new Map<string, string>();
    let i = 0;
    let ok = true;
    for (const segment of rule.segments) {
      if (i >= parts.length) {
        ok = false;
        break;
      }
      if (segment.kind === "literal") {
        if (parts[i] !== segment.value) ok = false;
        i++;
      } else if (segment.rest) {
        variables.set(segment.field, parts.slice(i).join("/"));
        i = parts.length;
      } else {
        if (parts[i] === "") ok = false;
        variables.set(segment.field, parts[i]!);
        i++;
      }
      if (!ok) break;
    }
    if (ok && i === parts.length) return { rule, variables };
  }
  return undefined;
}
