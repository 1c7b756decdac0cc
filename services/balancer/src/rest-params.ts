import { type DescField, type JsonValue, ScalarType } from "@bufbuild/protobuf";
import { base64Encode } from "@bufbuild/protobuf/wire";
import { Code, ConnectError } from "@connectrpc/connect";

// Path variables and query parameters are text in a URL; the message's fields are typed. They
// become the field's proto3 JSON, so `fromJson` checks them like a body (400 naming the field).
// Bytes are the exception to proto3 JSON's base64: in a URL a bytes field is its bytes,
// percent-encoded, as every URL encodes bytes (`/v1/kv/app%2Fgreeting` is the key
// "app/greeting", `%FF` the byte 0xFF). That is what a curl user types, every byte string has
// exactly one such spelling, and no base64 alphabet has to survive a path.

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** The name=value pairs of a query string (`?a=1&b=x%20y`), each value as its raw bytes. */
export function queryPairs(search: string): Array<[name: string, value: Uint8Array]> {
  const pairs: Array<[string, Uint8Array]> = [];
  for (const part of search.replace(/^\?/, "").split("&")) {
    if (part === "") continue;
    const cut = part.indexOf("=");
    const [name, value] = cut < 0 ? [part, ""] : [part.slice(0, cut), part.slice(cut + 1)];
    // Form encoding, as browsers and curl --data-urlencode -G write queries: "+" is a space.
    const nameBytes = percentDecode(name.replaceAll("+", " "), "query parameter name");
    let nameText: string;
    try {
      nameText = utf8.decode(nameBytes);
    } catch {
      throw new ConnectError(
        `the query parameter name "${name}" is not UTF-8 once percent-decoded`,
        Code.InvalidArgument,
      );
    }
    pairs.push([
      nameText,
      percentDecode(value.replaceAll("+", " "), `query parameter ${nameText}`),
    ]);
  }
  return pairs;
}

/** The bytes of a percent-encoded path variable (`a%2Fb` is "a/b"). */
export function pathBytes(text: string, field: string): Uint8Array {
  return percentDecode(text, `path variable ${field}`);
}

/** Percent-decodes to bytes: `%XX` is that byte, any other character its UTF-8 bytes. */
function percentDecode(text: string, where: string): Uint8Array {
  const raw = Buffer.from(text, "utf8");
  const out = Buffer.alloc(raw.length);
  let n = 0;
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] !== 0x25) {
      out[n++] = raw[i]!;
      continue;
    }
    const hex = raw.subarray(i + 1, i + 3).toString("latin1");
    if (!/^[0-9A-Fa-f]{2}$/.test(hex))
      throw new ConnectError(
        `the ${where} "${text}" has a "%" not followed by two hex digits; write "%25" for "%"`,
        Code.InvalidArgument,
      );
    out[n++] = Number.parseInt(hex, 16);
    i += 2;
  }
  return out.subarray(0, n);
}

/** A URL parameter's bytes as the JSON of a scalar or enum field (or of a list's element). */
export function paramJson(field: DescField, raw: Uint8Array, where: string): JsonValue {
  const scalar =
    field.fieldKind === "scalar" || field.fieldKind === "list" ? field.scalar : undefined;
  if (scalar === ScalarType.BYTES) return base64Encode(raw);
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    throw new ConnectError(
      `the ${where} ${field.name} is not UTF-8 once percent-decoded; it must be text`,
      Code.InvalidArgument,
    );
  }
  // proto3 JSON wants a JSON boolean; a URL can only say "true" or "false". Anything else stays a
  // string, so fromJson refuses it naming the field.
  if (scalar === ScalarType.BOOL && (text === "true" || text === "false")) return text === "true";
  return text;
}
