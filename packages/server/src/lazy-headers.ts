import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import { headerValue, nodeHeaders, webHeaders } from "./node-http.ts";

type HeaderRecord = Readonly<IncomingHttpHeaders>;

/**
 * Fetch `Headers` filled from Node's header record only when first used. Filling validates
 * every name and value (a regular expression each), about a tenth of a small unary call's
 * CPU, for headers most calls never read but one or two of. `get` and `has` of a plain
 * lower-case name read the record itself; any other method fills the headers first.
 */
class DeferredHeaders extends Headers {
  #record: HeaderRecord | undefined;

  constructor(record: HeaderRecord) {
    super();
    this.#record = record;
  }

  /** The record while the headers are not filled. */
  get unfilled(): HeaderRecord | undefined {
    return this.#record;
  }

  /** Copies the record into the headers, once. */
  fill(): void {
    const record = this.#record;
    if (record === undefined) return;
    // Cleared first: the appends below (through this class's append) must not fill again.
    this.#record = undefined;
    webHeaders(record, this);
  }
}

const headers = Headers.prototype;
/** A header name as Node gives it (lower case), which the record can answer for directly. */
const plainName = /^[a-z0-9-]+$/;

function define(name: keyof Headers, value: (this: DeferredHeaders, ...args: never[]) => unknown) {
  Object.defineProperty(DeferredHeaders.prototype, name, {
    value,
    writable: true,
    configurable: true,
  });
}

define("get", function (name: string) {
  const record = this.unfilled;
  if (record !== undefined && plainName.test(name)) return headerValue(record[name]);
  this.fill();
  return headers.get.call(this, name);
});
define("has", function (name: string) {
  const record = this.unfilled;
  if (record !== undefined && plainName.test(name)) return record[name] !== undefined;
  this.fill();
  return headers.has.call(this, name);
});
// Every other method fills the headers first, then does what Headers does.
for (const name of [
  "append",
  "set",
  "delete",
  "getSetCookie",
  "forEach",
  "entries",
  "keys",
  "values",
  Symbol.iterator,
  // What console.log and util.inspect show.
  Symbol.for("nodejs.util.inspect.custom"),
] as const) {
  const inherited = (headers as unknown as Record<PropertyKey, (...args: unknown[]) => unknown>)[
    name
  ]!;
  define(name as keyof Headers, function (...args: unknown[]) {
    this.fill();
    return inherited.apply(this, args);
  });
}

/** A request's headers (HTTP/2 pseudo-headers left out, as connect-node does). */
export class RequestHeaders extends DeferredHeaders {}

/** A response's headers or trailers, starting as a protocol's shared record. */
export class ResponseHeaders extends DeferredHeaders {
  /** As Node's outgoing headers: the shared record itself while nothing changed them. */
  outgoing(): OutgoingHttpHeaders {
    return this.unfilled ?? nodeHeaders(this);
  }
}
