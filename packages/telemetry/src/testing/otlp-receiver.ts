import { once } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { gunzipSync } from "node:zlib";
// The OpenTelemetry packages' own generated OTLP types (protobufjs static module).
import otlpRoot from "otlp-proto-decoder/build/src/generated/root.js";

export type AttributeValue = string | number | boolean;

/** One span as an OTLP/HTTP receiver got it, decoded and flattened. */
export interface ReceivedSpan {
  /** Hex, 32 characters. */
  traceId: string;
  /** Hex, 16 characters. */
  spanId: string;
  /** Hex, or "" for a root span. */
  parentSpanId: string;
  name: string;
  kind: "unspecified" | "internal" | "server" | "client" | "producer" | "consumer";
  attributes: Record<string, AttributeValue>;
  /** OTLP status code: 0 unset, 1 ok, 2 error. */
  status: { code: number; message: string };
  events: { name: string; attributes: Record<string, AttributeValue> }[];
  /** `service.name` of the resource that sent the span. */
  serviceName: string;
  /** Every attribute of that resource (arrays joined with spaces). */
  resource: Record<string, AttributeValue>;
  links: { traceId: string; spanId: string; attributes: Record<string, AttributeValue> }[];
}

export interface OtlpReceiver {
  /** Base URL, for `OTEL_EXPORTER_OTLP_ENDPOINT` (the exporter appends /v1/traces). */
  url: string;
  /** Every span received so far, in arrival order. */
  spans(): ReceivedSpan[];
  /** Resolves with all spans once `predicate` holds, checked on every arrival. */
  waitForSpans(predicate: (spans: ReceivedSpan[]) => boolean): Promise<ReceivedSpan[]>;
  close(): Promise<void>;
}

/**
 * Starts a real OTLP/HTTP trace receiver on 127.0.0.1: `POST /v1/traces` with
 * `application/x-protobuf` bodies (gzip or not), decoded with the OpenTelemetry
 * packages' generated protobuf types.
 */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const received: ReceivedSpan[] = [];
  const waiters = new Set<() => void>();
  const server = createServer((req, res) => {
    handleExport(req, res, (spans) => {
      received.push(...spans);
      for (const check of waiters) check();
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    spans: () => [...received],
    waitForSpans(predicate) {
      return new Promise((resolve, reject) => {
        const check = () => {
          try {
            if (!predicate(received)) return;
          } catch (error) {
            waiters.delete(check);
            reject(error);
            return;
          }
          waiters.delete(check);
          resolve([...received]);
        };
        waiters.add(check);
        check();
      });
    },
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    },
  };
}

function handleExport(
  req: IncomingMessage,
  res: ServerResponse,
  onSpans: (spans: ReceivedSpan[]) => void,
): void {
  if (req.method !== "POST" || req.url?.split("?")[0] !== "/v1/traces") {
    res.writeHead(404).end();
    req.resume();
    return;
  }
  const contentType = req.headers["content-type"] ?? "";
  if (!contentType.startsWith("application/x-protobuf")) {
    res.writeHead(415, { "content-type": "text/plain" }).end("expected application/x-protobuf");
    req.resume();
    return;
  }
  const chunks: Buffer[] = [];
  req.on("data", (chunk: Buffer) => chunks.push(chunk));
  req.on("end", () => {
    let spans: ReceivedSpan[];
    try {
      let body = Buffer.concat(chunks);
      if (req.headers["content-encoding"] === "gzip") body = gunzipSync(body);
      spans = decodeTraces(body);
    } catch (error) {
      res.writeHead(400, { "content-type": "text/plain" }).end(String(error));
      return;
    }
    // An empty ExportTraceServiceResponse is the empty protobuf message.
    res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
    onSpans(spans);
  });
}

// Shapes of the decoded protobufjs messages (fields absent on the wire are null).
interface PbAnyValue {
  stringValue?: string | null;
  boolValue?: boolean | null;
  intValue?: number | { toString(): string } | null;
  doubleValue?: number | null;
  bytesValue?: Uint8Array | null;
  arrayValue?: { values: PbAnyValue[] } | null;
}
interface PbKeyValue {
  key: string;
  value?: PbAnyValue | null;
}
interface PbSpan {
  traceId: Uint8Array;
  spanId: Uint8Array;
  parentSpanId?: Uint8Array | null;
  name: string;
  kind?: number | null;
  attributes: PbKeyValue[];
  status?: { code?: number | null; message?: string | null } | null;
  events: { name?: string | null; attributes: PbKeyValue[] }[];
  links: { traceId: Uint8Array; spanId: Uint8Array; attributes: PbKeyValue[] }[];
}
interface PbExportTraceServiceRequest {
  resourceSpans: {
    resource?: { attributes: PbKeyValue[] } | null;
    scopeSpans: { spans: PbSpan[] }[];
  }[];
}
interface OtlpRoot {
  opentelemetry: {
    proto: {
      collector: {
        trace: {
          v1: {
            ExportTraceServiceRequest: { decode(bytes: Uint8Array): PbExportTraceServiceRequest };
          };
        };
      };
    };
  };
}

const ExportTraceServiceRequest = (otlpRoot as unknown as OtlpRoot).opentelemetry.proto.collector
  .trace.v1.ExportTraceServiceRequest;

const KINDS = ["unspecified", "internal", "server", "client", "producer", "consumer"] as const;

function decodeTraces(body: Uint8Array): ReceivedSpan[] {
  const request = ExportTraceServiceRequest.decode(body);
  const spans: ReceivedSpan[] = [];
  for (const resourceSpans of request.resourceSpans) {
    const resource = attributesOf(resourceSpans.resource?.attributes ?? []);
    const serviceName = String(resource["service.name"] ?? "");
    for (const scopeSpans of resourceSpans.scopeSpans) {
      for (const span of scopeSpans.spans) {
        spans.push({
          traceId: hex(span.traceId),
          spanId: hex(span.spanId),
          parentSpanId: hex(span.parentSpanId),
          name: span.name,
          kind: KINDS[span.kind ?? 0] ?? "unspecified",
          attributes: attributesOf(span.attributes),
          status: { code: span.status?.code ?? 0, message: span.status?.message ?? "" },
          events: span.events.map((event) => ({
            name: event.name ?? "",
            attributes: attributesOf(event.attributes),
          })),
          serviceName,
          resource,
          links: span.links.map((link) => ({
            traceId: hex(link.traceId),
            spanId: hex(link.spanId),
            attributes: attributesOf(link.attributes),
          })),
        });
      }
    }
  }
  return spans;
}

function hex(bytes: Uint8Array | null | undefined): string {
  return bytes == null ? "" : Buffer.from(bytes).toString("hex");
}

function attributesOf(keyValues: PbKeyValue[]): Record<string, AttributeValue> {
  const attributes: Record<string, AttributeValue> = {};
  for (const { key, value } of keyValues) {
    const scalar = value == null ? undefined : scalarOf(value);
    if (scalar !== undefined) attributes[key] = scalar;
  }
  return attributes;
}

function scalarOf(value: PbAnyValue): AttributeValue | undefined {
  if (value.stringValue != null) return value.stringValue;
  if (value.boolValue != null) return value.boolValue;
  if (value.intValue != null) return Number(value.intValue.toString());
  if (value.doubleValue != null) return value.doubleValue;
  if (value.bytesValue != null) return hex(value.bytesValue);
  if (value.arrayValue != null) return value.arrayValue.values.map(scalarOf).join(" ");
  return undefined;
}
