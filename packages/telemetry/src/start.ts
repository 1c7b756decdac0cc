import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { metrics, propagation, trace } from "@opentelemetry/api";
import {
  CompositePropagator,
  getBooleanFromEnv,
  getStringFromEnv,
  W3CBaggagePropagator,
  W3CTraceContextPropagator,
} from "@opentelemetry/core";
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus";
import { defaultResource, resourceFromAttributes } from "@opentelemetry/resources";
import { NodeSDK } from "@opentelemetry/sdk-node";
import { NoopSpanProcessor, type SpanProcessor } from "@opentelemetry/sdk-trace-base";
import { ensureContextManager } from "./call-context.ts";
import { resetInstruments } from "./instruments.ts";
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
  /** Flushes pending spans and stops the SDK; a new `startTelemetry()` may follow. */
  shutdown(): Promise<void>;
}

/**
 * Starts the OpenTelemetry Node SDK for this process.
 *
 * Traces: OTLP/HTTP protobuf, configured by the standard variables
 * (`OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, headers,
 * compression, `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`, `OTEL_BSP_*`,
 * `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SERVICE_NAME`, `OTEL_TRACES_EXPORTER`). When no
 * endpoint or exporter is configured, spans are still created (trace ids reach logs
 * and downstream calls) but exported nowhere. No auto-instrumentation is loaded: the
 * Connect interceptors are the instrumentation.
 *
 * Metrics: a Prometheus reader served by {@link Telemetry.metricsHandler}.
 *
 * `OTEL_SDK_DISABLED=true` turns the SDK off; context propagation (W3C trace context,
 * baggage, deadlines, cancellation) keeps working.
 */
export function startTelemetry(options: TelemetryOptions): Telemetry {
  ensureContextManager();
  const prometheus = new PrometheusExporter({
    preventServerStart: true,
    metricProducers: [rpcDurationProducer],
  });
  const sdk = new NodeSDK({
    serviceName: getStringFromEnv("OTEL_SERVICE_NAME") ?? options.serviceName,
    resource:
      options.serviceVersion === undefined
        ? undefined
        : defaultResource().merge(
            resourceFromAttributes({ "service.version": options.serviceVersion }),
          ),
    // ensureContextManager() registered one already; NodeSDK reads null as "do not
    // register" (its setupContextManager), though its type does not say so.
    contextManager: null as unknown as undefined,
    instrumentations: [],
    metricReaders: [prometheus],
    logRecordProcessors: [],
    spanProcessors: options.spanProcessors ?? spanProcessorsForEnvironment(),
  });
  const disabled = getBooleanFromEnv("OTEL_SDK_DISABLED");
  sdk.start();
  if (disabled) {
    propagation.setGlobalPropagator(
      new CompositePropagator({
        propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()],
      }),
    );
  }
  resetInstruments();
  let stopped: Promise<void> | undefined;
  return {
    metricsHandler(req, res) {
      if (disabled) {
        res.statusCode = 200;
        res.setHeader("content-type", "text/plain");
        res.end("# OpenTelemetry SDK disabled (OTEL_SDK_DISABLED)\n");
        return;
      }
      prometheus.getMetricsRequestHandler(req as IncomingMessage, res as ServerResponse);
    },
    shutdown() {
      stopped ??= sdk.shutdown().finally(() => {
        trace.disable();
        metrics.disable();
        propagation.disable();
        resetInstruments();
      });
      return stopped;
    },
  };
}

/**
 * `undefined` lets the SDK build exporters from the environment; without any trace
 * endpoint or exporter setting, a processor that exports nothing keeps tracing on.
 */
function spanProcessorsForEnvironment(): SpanProcessor[] | undefined {
  const configured =
    getStringFromEnv("OTEL_EXPORTER_OTLP_ENDPOINT") !== undefined ||
    getStringFromEnv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") !== undefined ||
    getStringFromEnv("OTEL_TRACES_EXPORTER") !== undefined;
  return configured ? undefined : [new NoopSpanProcessor()];
}
