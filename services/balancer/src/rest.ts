import type http from "node:http";
import type http2 from "node:http2";
import {
  type create,
  type DescField,
  type DescMessage,
  fromJson,
  type JsonObject,
  type JsonValue,
  toJson,
} from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { context, propagation, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { notFoundWhenEmpty } from "./rest-not-found.ts";
import { paramJson, pathBytes, queryPairs } from "./rest-params.ts";
import { matchRule, type RestRule } from "./rest-rules.ts";
import type { Route } from "./route.ts";

const tracer = trace.getTracer("@quartet/balancer-service");

type Request = http.IncomingMessage | http2.Http2ServerRequest;
type Response = http.ServerResponse | http2.Http2ServerResponse;

/** HTTP status of a Connect code, as grpc-gateway and Vanguard map them. */
const httpStatusOf: Record<Code, number> = {
  [Code.Canceled]: 499,
  [Code.Unknown]: 500,
  [Code.InvalidArgument]: 400,
  [Code.DeadlineExceeded]: 504,
  [Code.NotFound]: 404,
  [Code.AlreadyExists]: 409,
  [Code.PermissionDenied]: 403,
  [Code.ResourceExhausted]: 429,
  [Code.FailedPrecondition]: 400,
  [Code.Aborted]: 409,
  [Code.OutOfRange]: 400,
  [Code.Unimplemented]: 501,
  [Code.Internal]: 500,
  [Code.Unavailable]: 503,
  [Code.DataLoss]: 500,
  [Code.Unauthenticated]: 401,
};

export interface RestOptions {
  rules: readonly RestRule[];
  routes: ReadonlyMap<string, Route>;
  maxRequestBytes: number;
  maxAttempts: number;
}

/**
 * The REST tier: a request matching a `google.api.http` rule is turned into the method's
 * request message (path variables, query parameters, body), sent to the service's endpoints
 * as a Connect call, and its answer returned as JSON. Returns false when no rule matches.
 */
export function createRestHandler(options: RestOptions) {
  return (req: Request, res: Response): boolean => {
    const url = new URL(req.url ?? "/", "http://gateway");
    const match = matchRule(options.rules, req.method ?? "", url.pathname);
    if (!match) return false;
    const parent = propagation.extract(context.active(), req.headers);
    const span = tracer.startSpan(
      `gateway ${match.rule.verb} ${match.rule.template}`,
      { kind: SpanKind.SERVER, attributes: { "rpc.method": match.rule.method.name } },
      parent,
    );
    const ctx = trace.setSpan(parent, span);
    void transcode(req, res, url, match.rule, match.variables, options, ctx)
      .catch((e: unknown) => {
        const error = ConnectError.from(e);
        span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
        sendError(res, error);
      })
      .finally(() => span.end());
    return true;
  };
}

/** Lists the REST rules, for a 404 that tells the caller what exists. */
export function restRoutesText(rules: readonly RestRule[]): string {
  return rules.map((r) => `${r.verb} ${r.template}`).join(", ");
}

async function transcode(
  req: Request,
  res: Response,
  url: URL,
  rule: RestRule,
  variables: Map<string, string>,
  options: RestOptions,
  ctx: ReturnType<typeof context.active>,
): Promise<void> {
  const input = rule.method.input;
  const json: JsonObject = {};
  if (rule.body !== "") {
    const text = await readText(req, options.maxRequestBytes);
    let parsed: JsonValue;
    try {
      parsed = text.trim() === "" ? {} : (JSON.parse(text) as JsonValue);
    } catch (e) {
      throw new ConnectError(
        `the request body is not JSON: ${(e as Error).message}`,
        Code.InvalidArgument,
      );
    }
    if (rule.body === "*") {
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
        throw new ConnectError(
          `the request body must be a JSON object (${input.typeName})`,
          Code.InvalidArgument,
        );
      Object.assign(json, parsed);
    } else {
      json[jsonNameOf(input, rule.body)] = parsed;
    }
  }
  for (const [name, value] of queryPairs(url.search)) {
    // With body "*" the body is the whole message: a query parameter would be a second say.
    if (rule.body === "*")
      throw new ConnectError(
        `unknown query parameter "${name}": ${rule.verb} ${rule.template} takes the whole ${input.typeName} as its JSON body, and no query parameters`,
        Code.InvalidArgument,
      );
    const field = fieldAt(input, name);
    if (!field || field.fieldKind === "message" || field.fieldKind === "map")
      throw new ConnectError(
        `unknown query parameter "${name}": ${input.typeName} has no such ${field ? "scalar " : ""}field`,
        Code.InvalidArgument,
      );
    setPath(json, input, name, value, "query parameter");
  }
  for (const [name, value] of variables)
    setPath(json, input, name, pathBytes(value, name), "path variable");
  let message: ReturnType<typeof create>;
  try {
    message = fromJson(input, json, { ignoreUnknownFields: false });
  } catch (e) {
    throw new ConnectError(
      `the request is not a ${input.typeName}: ${(e as Error).message}`,
      Code.InvalidArgument,
    );
  }
  const service = rule.method.parent.typeName;
  const route = options.routes.get(service);
  if (!route)
    throw new ConnectError(
      `the gateway has no route for service ${service} behind ${rule.verb} ${rule.template}`,
      Code.Unimplemented,
    );
  const controller = new AbortController();
  res.once("close", () => controller.abort());
  const headers = new Headers();
  const auth = req.headers.authorization;
  if (typeof auth === "string") headers.set("authorization", auth);
  // The backend call is a child of the gateway's span; baggage passes through.
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  for (const [name, value] of Object.entries(carrier)) headers.set(name, value);
  const answer = await route.unary(
    rule.method,
    message,
    headers,
    controller.signal,
    options.maxAttempts,
    rule.idempotent,
  );
  const missing = notFoundWhenEmpty(rule, message, answer);
  if (missing) throw new ConnectError(missing, Code.NotFound);
  const body = JSON.stringify(toJson(rule.method.output, answer as never));
  (res as http.ServerResponse).writeHead(200, { "content-type": "application/json" });
  res.end(body);
}

function sendError(res: Response, error: ConnectError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  (res as http.ServerResponse).writeHead(httpStatusOf[error.code] ?? 500, {
    "content-type": "application/json",
  });
  res.end(JSON.stringify({ code: error.code, message: error.rawMessage, details: [] }));
}

/** Ends a REST request no rule serves with 404 naming the rules that exist. */
export function sendRestNotFound(
  res: Response,
  method: string,
  path: string,
  rules: readonly RestRule[],
): void {
  sendError(
    res,
    new ConnectError(
      `no REST route for ${method} ${path}; known REST routes: ${restRoutesText(rules) || "none"}`,
      Code.NotFound,
    ),
  );
}

async function readText(req: Request, maxBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    if (bytes > maxBytes)
      throw new ConnectError(
        `request body is larger than ${maxBytes} bytes`,
        Code.ResourceExhausted,
      );
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** The field a dotted path (proto or JSON names) names, or undefined. */
function fieldAt(message: DescMessage, path: string): DescField | undefined {
  let current: DescMessage | undefined = message;
  let field: DescField | undefined;
  for (const name of path.split(".")) {
    if (!current) return undefined;
    field = current.fields.find((f) => f.name === name || f.jsonName === name);
    if (!field) return undefined;
    current = field.fieldKind === "message" ? field.message : undefined;
  }
  return field;
}

function jsonNameOf(message: DescMessage, name: string): string {
  const field = message.fields.find((f) => f.name === name || f.jsonName === name);
  if (!field) throw new ConnectError(`REST rule body names unknown field ${name}`, Code.Internal);
  return field.jsonName;
}

/** Sets a URL parameter at a dotted field path of a JSON object, by JSON names. */
function setPath(
  json: JsonObject,
  message: DescMessage,
  path: string,
  value: Uint8Array,
  where: string,
): void {
  const names = path.split(".");
  let target = json;
  let current: DescMessage | undefined = message;
  for (let i = 0; i < names.length; i++) {
    const field: DescField | undefined = current?.fields.find(
      (f) => f.name === names[i] || f.jsonName === names[i],
    );
    if (!field)
      throw new ConnectError(`${message.typeName} has no field ${path}`, Code.InvalidArgument);
    if (i === names.length - 1) {
      const item = paramJson(field, value, where);
      if (field.fieldKind === "list") {
        const list = (target[field.jsonName] as JsonValue[] | undefined) ?? [];
        list.push(item);
        target[field.jsonName] = list;
      } else target[field.jsonName] = item;
      return;
    }
    target = (target[field.jsonName] as JsonObject | undefined) ??= {};
    current = field.fieldKind === "message" ? field.message : undefined;
  }
}
