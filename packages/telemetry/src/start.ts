import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import {
  DiagConsoleLogger,
  diag,
  metrics,
  propagation,
  type TextMapPropagator,
  trace,
} from "@opentelemetry/api";
import {
  ALLOW_ALL_BAGGAGE_KEYS,
  BaggageSpanProcessor,
} from "@opentelemetry/baggage-span-processor";
import {
  CompositePropagator,
  diagLogLevelFromString,
  getBooleanFromEnv,
  getStringFromEnv,
  getStringListFromEnv,
  W3CBaggagePropagator,
  W3CTraceContextPropagator,
} from "@opentelemetry/core";
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { RuntimeNodeInstrumentation } from "@opentelemetry/instrumentation-runtime-node";
import {
  defaultResource,
  detectResources,
  type Resource,
  resourceFromAttributes,
} from "@opentelemetry/resources";
import { AggregationType, MeterProvider, type ViewOptions } from "@opentelemetry/sdk-metrics";
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  NoopSpanProcessor,
  type SpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { ATTR_SERVICE_NAME } from "@opentelemetry/semantic-conventions";
import { ensureContextManager } from "./call-context.ts";
import { resetInstruments, setSpansOn } from "./instruments.ts";
import { instanceAttributes, resourceDetectors } from "./resource.ts";
import { rpcDurationProducer } from "./rpc-durations.ts";

export interface TelemetryOptions {
  /** `service.name`; `OTEL_SERVICE_NAME` overrides it. */
  serviceName: string;
  /** `service.version` resource attribute. */
  serviceVersion?: string;
  /** Test hook: span processors to use instead of the ones the environment configures. */
  spanProcessors?: SpanProcessor[];
}

export interface Telemetry {
  /** Prometheus text-format handler for GET /metrics (PrometheusExporter with preventServerStart, fed by the OTel MeterProvider). */
  metricsHandler(
    req: IncomingMessage | Http2ServerRequest,
    res: ServerResponse | Http2ServerResponse,
  ): void;
  /** Exports every span ended so far. */
  forceFlush(): Promise<void>;
  /** Flushes pending spans and stops the SDK; a new `startTelemetry()` may follow. */
  shutdown(): Promise<void>;
}

/**
 * Starts OpenTelemetry for this process: a tracer provider, a meter provider and the runtime
 * metrics, set as the API's globals. (Built from the SDK's parts rather than with `NodeSDK`,
 * which loads every exporter it can be configured with: 22 MB of code in every process's heap,
 * which each old-generation GC marks.)
 *
 * Traces: OTLP/HTTP protobuf, configured by the standard variables
 * (`OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, headers,
 * compression, `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`, `OTEL_BSP_*`,
 * `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SERVICE_NAME`, `OTEL_TRACES_EXPORTER`). When no
 * endpoint or exporter is configured, spans are still created (trace ids reach logs
 * and downstream calls) but exported nowhere. No auto-instrumentation is loaded: the
 * Connect interceptors are the instrumentation. Context travels as W3C trace context and
 * baggage.
 *
 * Metrics: a Prometheus reader served by {@link Telemetry.metricsHandler}: the RPC
 * durations, and the runtime's own (GC pauses by kind, event-loop delay and utilization,
 * heap), which patch nothing and say whether a slow tail was the process pausing.
 *
 * `OTEL_SDK_DISABLED=true` turns the SDK off; context propagation (W3C trace context,
 * baggage, deadlines, cancellation) keeps working.
 */
export function startTelemetry(options: TelemetryOptions): Telemetry {
  // Checked before anything global is set: a bad setting leaves the process as it was.
  const propagator = propagatorForEnvironment();
  ensureContextManager();
  // The SDK's own complaints (an exporter that cannot reach its collector) at OTEL_LOG_LEVEL.
  const logLevel = diagLogLevelFromString(getStringFromEnv("OTEL_LOG_LEVEL"));
  if (logLevel !== undefined) diag.setLogger(new DiagConsoleLogger(), { logLevel });
  propagation.setGlobalPropagator(propagator);
  resetInstruments();
  const disabled = getBooleanFromEnv("OTEL_SDK_DISABLED");
  setSpansOn(!disabled && !samplesNothing());
  const sdk = disabled ? undefined : startSdk(options);
  let stopped: Promise<void> | undefined;
  return {
    metricsHandler(req, res) {
      if (sdk === undefined) {
        res.statusCode = 200;
        res.setHeader("content-type", "text/plain");
        res.end("# OpenTelemetry SDK disabled (OTEL_SDK_DISABLED)\n");
        return;
      }
      sdk.prometheus.getMetricsRequestHandler(req as IncomingMessage, res as ServerResponse);
    },
    async forceFlush() {
      await sdk?.tracerProvider.forceFlush();
    },
    shutdown() {
      stopped ??= Promise.all([sdk?.tracerProvider.shutdown(), sdk?.meterProvider.shutdown()])
        .then(() => {})
        .finally(() => {
          sdk?.runtime.disable();
          diag.disable();
          trace.disable();
          metrics.disable();
          propagation.disable();
          resetInstruments();
        });
      return stopped;
    },
  };
}

function startSdk(options: TelemetryOptions) {
  const resource = processResource(options);
  const prometheus = new PrometheusExporter({
    preventServerStart: true,
    metricProducers: [rpcDurationProducer],
  });
  const meterProvider = new MeterProvider({
    resource,
    readers: [prometheus],
    views: [gcPauseView],
  });
  metrics.setGlobalMeterProvider(meterProvider);
  const runtime = new RuntimeNodeInstrumentation({ enabled: false });
  runtime.setMeterProvider(meterProvider);
  runtime.enable();
  // The sampler and span limits come from the OTEL_TRACES_SAMPLER* and OTEL_SPAN_* variables.
  const tracerProvider = new BasicTracerProvider({
    resource,
    spanProcessors: [
      ...baggageAttributeProcessors(),
      ...(options.spanProcessors ?? spanProcessorsForEnvironment()),
    ],
  });
  trace.setGlobalTracerProvider(tracerProvider);
  return { prometheus, meterProvider, runtime, tracerProvider };
}

/** What every span and metric says about the process that made it, as NodeSDK composes it. */
function processResource(options: TelemetryOptions): Resource {
  return defaultResource()
    .merge(
      resourceFromAttributes({
        ...instanceAttributes(),
        ...(options.serviceVersion === undefined
          ? {}
          : { "service.version": options.serviceVersion }),
      }),
    )
    .merge(detectResources({ detectors: resourceDetectors }))
    .merge(
      resourceFromAttributes({
        [ATTR_SERVICE_NAME]: getStringFromEnv("OTEL_SERVICE_NAME") ?? options.serviceName,
      }),
    );
}

/**
 * GC pauses in buckets that tell a 1 ms scavenge from a 4 ms one: the instrumentation's own
 * start at 5 ms, where every scavenge (the pauses behind a Node service's p99) falls in one.
 */
const gcPauseView: ViewOptions = {
  instrumentName: "v8js.gc.duration",
  aggregation: {
    type: AggregationType.EXPLICIT_BUCKET_HISTOGRAM,
    options: { boundaries: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1] },
  },
};

/**
 * W3C trace context and baggage, or what `OTEL_PROPAGATORS` names of them (`none`: neither).
 * Other formats (b3, jaeger) are not built in: a name this does not know is an error at start.
 */
function propagatorForEnvironment(): TextMapPropagator {
  const names = getStringListFromEnv("OTEL_PROPAGATORS") ?? ["tracecontext", "baggage"];
  const known: Record<string, () => TextMapPropagator> = {
    tracecontext: () => new W3CTraceContextPropagator(),
    baggage: () => new W3CBaggagePropagator(),
  };
  const propagators: TextMapPropagator[] = [];
  for (const name of names) {
    if (name === "none") return new CompositePropagator();
    const make = known[name];
    if (make === undefined) {
      throw new Error(
        `OTEL_PROPAGATORS names "${name}": Quartet propagates tracecontext and baggage (or none)`,
      );
    }
    propagators.push(make());
  }
  return new CompositePropagator({ propagators });
}

/** True when the configured sampler drops every span, whatever the parent says. */
function samplesNothing(): boolean {
  const sampler = getStringFromEnv("OTEL_TRACES_SAMPLER");
  return sampler === "always_off";
}

/**
 * OTLP/HTTP protobuf export when an endpoint is configured (the exporter and the batch
 * processor read the standard OTEL_EXPORTER_OTLP_* and OTEL_BSP_* variables themselves);
 * otherwise a processor that exports nothing keeps tracing on.
 */
function spanProcessorsForEnvironment(): SpanProcessor[] {
  const configured =
    getStringFromEnv("OTEL_EXPORTER_OTLP_ENDPOINT") !== undefined ||
    getStringFromEnv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") !== undefined;
  const exporter = getStringFromEnv("OTEL_TRACES_EXPORTER");
  if (!configured || exporter === "none") return [new NoopSpanProcessor()];
  return [new BatchSpanProcessor(new OTLPTraceExporter())];
}

/**
 * Copies the baggage entries named in QUARTET_BAGGAGE_SPAN_ATTRIBUTES (comma-separated, or
 * `*` for all) onto every span started while they are in context, so request-scoped values
 * such as a tenant show up in Jaeger. Off by default: baggage may carry what should not be
 * stored.
 */
function baggageAttributeProcessors(): SpanProcessor[] {
  const setting = getStringFromEnv("QUARTET_BAGGAGE_SPAN_ATTRIBUTES");
  if (!setting) return [];
  if (setting.trim() === "*") return [new BaggageSpanProcessor(ALLOW_ALL_BAGGAGE_KEYS)];
  const keys = new Set(setting.split(",").map((k) => k.trim()));
  return [new BaggageSpanProcessor((key) => keys.has(key))];
}
