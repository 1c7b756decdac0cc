import { type DescField, type DescMessage, ScalarType } from "@bufbuild/protobuf";
import { answersNotFound } from "./rest-not-found.ts";
import type { RestRule } from "./rest-rules.ts";

type Schema = Record<string, unknown>;

/** An OpenAPI 3.0 document of the REST tier, from the rules' descriptors. */
export function openApiDocument(rules: readonly RestRule[]): Record<string, unknown> {
  const schemas: Record<string, Schema> = {};
  const ref = (m: DescMessage): Schema => {
    addSchema(m, schemas);
    return { $ref: `#/components/schemas/${m.typeName}` };
  };
  const paths: Record<string, Record<string, unknown>> = {};
  for (const rule of rules) {
    const input = rule.method.input;
    const pathVars = rule.segments.flatMap((s) => (s.kind === "variable" ? [s.field] : []));
    const path = `/${rule.segments.map((s) => (s.kind === "literal" ? s.value : `{${s.field}}`)).join("/")}`;
    const parameters: Schema[] = pathVars.map((name) => {
      const field = input.fields.find((f) => f.name === name);
      const rest = rule.segments.some((s) => s.kind === "variable" && s.field === name && s.rest);
      return {
        name,
        in: "path",
        required: true,
        ...urlParam(field, ref, rest ? ' It may hold "/" as it is.' : ""),
      };
    });
    if (rule.body !== "*") {
      for (const f of input.fields) {
        if (
          pathVars.includes(f.name) ||
          f.name === rule.body ||
          f.fieldKind === "message" ||
          f.fieldKind === "map"
        )
          continue;
        parameters.push({ name: f.jsonName, in: "query", required: false, ...urlParam(f, ref) });
      }
    }
    const notFound = answersNotFound(rule)
      ? {
          "404": {
            description: "Not found: the answer would list nothing",
            content: { "application/json": { schema: { $ref: "#/components/schemas/Status" } } },
          },
        }
      : {};
    const operation: Record<string, unknown> = {
      operationId: `${rule.method.parent.typeName}.${rule.method.name}`,
      summary: rule.method.name,
      tags: [rule.method.parent.typeName],
      parameters,
      responses: {
        "200": {
          description: "OK",
          content: { "application/json": { schema: ref(rule.method.output) } },
        },
        ...notFound,
        default: {
          description: "Error",
          content: { "application/json": { schema: { $ref: "#/components/schemas/Status" } } },
        },
      },
    };
    if (rule.body !== "") {
      const field = input.fields.find((f) => f.name === rule.body);
      operation.requestBody = {
        required: true,
        content: {
          "application/json": {
            schema: rule.body === "*" || !field ? ref(input) : fieldSchema(field, ref),
          },
        },
      };
    }
    paths[path] ??= {};
    paths[path][rule.verb.toLowerCase()] = operation;
  }
  schemas.Status = {
    type: "object",
    properties: {
      code: { type: "integer", description: "gRPC/Connect status code" },
      message: { type: "string" },
      details: { type: "array", items: { type: "object" } },
    },
  };
  return {
    openapi: "3.0.3",
    info: {
      title: "Quartet REST API",
      version: "v1",
      description: "Served by the Quartet gateway, transcoded to Connect RPCs (google.api.http).",
    },
    paths,
    components: { schemas },
  };
}

/**
 * A path or query parameter's schema. Bytes there are percent-encoded bytes, not base64
 * (rest-params.ts), so they are plain strings with a description that says so.
 */
function urlParam(
  field: DescField | undefined,
  ref: (m: DescMessage) => Schema,
  note = "",
): { schema: Schema; description?: string } {
  if (!field) return { schema: { type: "string" } };
  const scalar =
    field.fieldKind === "scalar" || field.fieldKind === "list" ? field.scalar : undefined;
  if (scalar === ScalarType.BYTES) {
    const bytes = {
      type: "string",
      description: `${field.name}: bytes, percent-encoded as in any URL (UTF-8 text as it is, %FF for the byte 0xFF), not base64.${note}`,
    };
    return field.fieldKind === "list"
      ? { schema: { type: "array", items: bytes }, description: bytes.description }
      : { schema: bytes, description: bytes.description };
  }
  return { schema: fieldSchema(field, ref), ...(note ? { description: note.trim() } : {}) };
}

function addSchema(m: DescMessage, schemas: Record<string, Schema>): void {
  if (schemas[m.typeName]) return;
  const properties: Record<string, Schema> = {};
  schemas[m.typeName] = { type: "object", properties };
  const ref = (n: DescMessage): Schema => {
    addSchema(n, schemas);
    return { $ref: `#/components/schemas/${n.typeName}` };
  };
  for (const f of m.fields) properties[f.jsonName] = fieldSchema(f, ref);
}

function scalarSchema(f: DescField): Schema {
  if (f.fieldKind === "enum") return { type: "string", enum: f.enum.values.map((v) => v.name) };
  const scalar = (f as { scalar?: number }).scalar;
  switch (scalar) {
    case 1:
    case 2:
      return { type: "number" };
    case 3:
    case 4:
    case 6:
    case 16:
    case 18:
      return { type: "string", format: "int64" };
    case 5:
    case 7:
    case 13:
    case 15:
    case 17:
      return { type: "integer" };
    case 8:
      return { type: "boolean" };
    case 12:
      return { type: "string", format: "byte" };
    default:
      return { type: "string" };
  }
}

function fieldSchema(f: DescField, ref: (m: DescMessage) => Schema): Schema {
  const comment = f.name;
  switch (f.fieldKind) {
    case "message":
      return ref(f.message);
    case "list":
      return {
        type: "array",
        items: f.listKind === "message" ? ref(f.message) : scalarSchema(f as DescField),
        description: comment,
      };
    case "map":
      return {
        type: "object",
        additionalProperties: f.mapKind === "message" ? ref(f.message) : { type: "string" },
      };
    default:
      return scalarSchema(f);
  }
}
