import { type Attributes, ValueType } from "@opentelemetry/api";
import { emptyResource } from "@opentelemetry/resources";
import {
  AggregationTemporality,
  type CollectionResult,
  DataPointType,
  type HistogramMetricData,
  type MetricProducer,
} from "@opentelemetry/sdk-metrics";

const SCOPE = { name: "@quartet/telemetry" };

/** Millisecond buckets that resolve sub-millisecond loopback calls as well as slow ones. */
const BOUNDARIES_MS = [
  0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000,
];

/** One cumulative histogram series: fixed attributes, recorded without any hashing. */
export class DurationSeries {
  readonly attributes: Attributes;
  readonly startTime: [number, number];
  readonly counts: number[] = new Array(BOUNDARIES_MS.length + 1).fill(0);
  count = 0;
  sum = 0;
  min = Number.POSITIVE_INFINITY;
  max = Number.NEGATIVE_INFINITY;

  constructor(attributes: Attributes) {
    this.attributes = attributes;
    this.startTime = hrTimeNow();
  }

  record(ms: number): void {
    let bucket = 0;
    while (bucket < BOUNDARIES_MS.length && ms > BOUNDARIES_MS[bucket]!) bucket++;
    this.counts[bucket]!++;
    this.count++;
    this.sum += ms;
    if (ms < this.min) this.min = ms;
    if (ms > this.max) this.max = ms;
  }
}

const serverSeries: DurationSeries[] = [];
const clientSeries: DurationSeries[] = [];

/** A new `rpc.server.duration` or `rpc.client.duration` series for one attribute set. */
export function createDurationSeries(isServer: boolean, attributes: Attributes): DurationSeries {
  const series = new DurationSeries(attributes);
  (isServer ? serverSeries : clientSeries).push(series);
  return series;
}

/**
 * Serves the RPC duration histograms to a metric reader. The SDK's synchronous
 * histogram hashes the attribute set on every record (about 1 µs, a large share of a
 * loopback RPC); these series are resolved once per method and code instead, then
 * collected through the reader's standard MetricProducer hook, next to the SDK's own
 * instruments, as ordinary cumulative histograms.
 */
export const rpcDurationProducer: MetricProducer = {
  async collect(): Promise<CollectionResult> {
    return {
      resourceMetrics: {
        resource: emptyResource(),
        scopeMetrics: [
          {
            scope: SCOPE,
            metrics: [
              histogram(
                "rpc.server.duration",
                "Duration of inbound RPCs, from arrival to the end of the response",
                serverSeries,
              ),
              histogram(
                "rpc.client.duration",
                "Duration of outbound RPCs, from the call to the end of the response",
                clientSeries,
              ),
            ],
          },
        ],
      },
      errors: [],
    };
  },
};

function histogram(
  name: string,
  description: string,
  series: DurationSeries[],
): HistogramMetricData {
  const endTime = hrTimeNow();
  return {
    descriptor: { name, description, unit: "ms", valueType: ValueType.DOUBLE },
    aggregationTemporality: AggregationTemporality.CUMULATIVE,
    dataPointType: DataPointType.HISTOGRAM,
    dataPoints: series
      .filter((s) => s.count > 0)
      .map((s) => ({
        attributes: s.attributes,
        startTime: s.startTime,
        endTime,
        value: {
          buckets: { boundaries: BOUNDARIES_MS, counts: [...s.counts] },
          count: s.count,
          sum: s.sum,
          min: s.min,
          max: s.max,
        },
      })),
  };
}

function hrTimeNow(): [number, number] {
  const ms = Date.now();
  return [Math.floor(ms / 1000), (ms % 1000) * 1_000_000];
}
