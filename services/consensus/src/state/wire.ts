import { WireType } from "@bufbuild/protobuf/wire";

/**
 * Protobuf's binary format for the few messages written by hand on the hot path (a key's
 * versions, a put's log entry), straight into a buffer sized first: toBinary's writer starts
 * at 128 bytes and doubles, and every buffer over 64 bytes it makes is a separate allocation
 * outside V8's heap, about 0.7 us each here (a 300-byte put command took 3.4 us). Field
 * numbers below 16 only, so every tag is one byte. An int64 is its two's complement as 64
 * unsigned bits; the common case, 0 to 2^53, stays a number. Each caller's tests compare its
 * bytes with toBinary's.
 */

const maxSafe = BigInt(Number.MAX_SAFE_INTEGER);

function varintSize(n: number): number {
  let size = 1;
  for (; n >= 128; size++) n = Math.floor(n / 128);
  return size;
}

/** A length-delimited field's size, tag and length included, `length` bytes of payload. */
export function delimitedSize(length: number): number {
  return 1 + varintSize(length) + length;
}

/** A bytes field's size (none when empty: proto3 leaves defaults out). */
export function bytesFieldSize(b: Uint8Array): number {
  return b.byteLength === 0 ? 0 : delimitedSize(b.byteLength);
}

export function int64FieldSize(v: bigint): number {
  if (v === 0n) return 0;
  if (v > 0n && v <= maxSafe) return 1 + varintSize(Number(v));
  return 1 + bigVarint(BigInt.asUintN(64, v)).length;
}

/** An integer field's size, for a number from 0 to 2^53 (none when 0). */
export function numberFieldSize(n: number): number {
  return n === 0 ? 0 : 1 + varintSize(n);
}

export function boolFieldSize(v: boolean): number {
  return v ? 2 : 0;
}

function putTag(buf: Uint8Array, at: number, field: number, wireType: WireType): number {
  buf[at] = (field << 3) | wireType;
  return at + 1;
}

function putVarint(buf: Uint8Array, at: number, n: number): number {
  for (; n >= 128; n = Math.floor(n / 128)) buf[at++] = (n % 128) | 128;
  buf[at] = n;
  return at + 1;
}

/** The tag and length of a length-delimited field whose payload follows. */
export function putDelimited(buf: Uint8Array, at: number, field: number, length: number): number {
  return putVarint(buf, putTag(buf, at, field, WireType.LengthDelimited), length);
}

export function putBytesField(buf: Uint8Array, at: number, field: number, b: Uint8Array): number {
  if (b.byteLength === 0) return at;
  at = putDelimited(buf, at, field, b.byteLength);
  buf.set(b, at);
  return at + b.byteLength;
}

export function putInt64Field(buf: Uint8Array, at: number, field: number, v: bigint): number {
  if (v === 0n) return at;
  at = putTag(buf, at, field, WireType.Varint);
  if (v > 0n && v <= maxSafe) return putVarint(buf, at, Number(v));
  const bytes = bigVarint(BigInt.asUintN(64, v));
  buf.set(bytes, at);
  return at + bytes.length;
}

export function putNumberField(buf: Uint8Array, at: number, field: number, n: number): number {
  return n === 0 ? at : putVarint(buf, putTag(buf, at, field, WireType.Varint), n);
}

export function putBoolField(buf: Uint8Array, at: number, field: number, v: boolean): number {
  return v ? putVarint(buf, putTag(buf, at, field, WireType.Varint), 1) : at;
}

function bigVarint(u: bigint): number[] {
  const out: number[] = [];
  for (; u >= 128n; u >>= 7n) out.push(Number(u & 127n) | 128);
  out.push(Number(u));
  return out;
}
