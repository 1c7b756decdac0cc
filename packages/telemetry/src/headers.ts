import type { TextMapGetter, TextMapSetter } from "@opentelemetry/api";

/** Reads propagation fields from Fetch API `Headers` (case-insensitive by nature). */
export const headersGetter: TextMapGetter<Headers> = {
  get(carrier, key) {
    return carrier.get(key) ?? undefined;
  },
  keys(carrier) {
    return Array.from(carrier.keys());
  },
};

/** Writes propagation fields into Fetch API `Headers`. */
export const headersSetter: TextMapSetter<Headers> = {
  set(carrier, key, value) {
    carrier.set(key, value);
  },
};
