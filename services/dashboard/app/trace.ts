// Every action the page takes starts its own trace: the page makes a W3C traceparent and sends
// it, the gateway and services continue it, and the action log shows its id (a link into
// Jaeger when the gateway was given QUARTET_JAEGER_URL).
import { fill, fmtTime, h } from "./dom.ts";

export interface DashboardConfig {
  /** Jaeger UI base URL, e.g. http://127.0.0.1:16686; empty when not set. */
  jaegerUrl: string;
  /** False when the deployment turned the fault controls off. */
  controls: boolean;
}

export const config: DashboardConfig = { jaegerUrl: "", controls: true };

export async function loadConfig(): Promise<void> {
  try {
    const res = await fetch("/dashboard.json");
    if (res.ok) Object.assign(config, await res.json());
  } catch {
    // Served by the dev server without a gateway: defaults.
  }
}

function hex(bytes: number): string {
  const buf = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(buf, (b) => b.toString(16).padStart(2, "0")).join("");
}

export interface Trace {
  traceId: string;
  headers: { traceparent: string };
}

export function newTrace(): Trace {
  const traceId = hex(16);
  return { traceId, headers: { traceparent: `00-${traceId}-${hex(8)}-01` } };
}

let log: HTMLElement | undefined;
export function mountActionLog(el: HTMLElement): void {
  log = el;
}

export function traceLink(traceId: string): HTMLElement {
  return config.jaegerUrl
    ? h(
        "a",
        { href: `${config.jaegerUrl.replace(/\/$/, "")}/trace/${traceId}`, target: "_blank" },
        traceId,
      )
    : h("code", {}, traceId);
}

/**
 * Runs one user action under a fresh trace and logs it: what, when, the outcome, the trace id.
 * The action's calls pass `trace.headers` as call options.
 */
export async function act<T>(
  what: string,
  run: (trace: Trace) => Promise<T>,
  describe: (result: T) => string = () => "ok",
): Promise<T | undefined> {
  const trace = newTrace();
  const outcome = h("span", { class: "pending" }, "…");
  const row = h(
    "li",
    { "data-trace-id": trace.traceId },
    h("time", {}, fmtTime(Date.now())),
    " ",
    h("b", {}, what),
    " ",
    outcome,
    " trace ",
    traceLink(trace.traceId),
  );
  log?.prepend(row);
  while (log && log.children.length > 50) log.lastElementChild?.remove();
  try {
    const result = await run(trace);
    outcome.className = "ok";
    fill(outcome, describe(result));
    return result;
  } catch (error) {
    outcome.className = "error";
    fill(outcome, error instanceof Error ? error.message : String(error));
    return undefined;
  }
}
