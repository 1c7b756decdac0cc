import { closeSync, openSync, readFileSync, writeSync } from "node:fs";
import { RecordKind, readNumber, readSegment, recordHeaderBytes } from "../../src/storage/wal.ts";

/**
 * Flips a byte of entry `index`'s data in a log segment, as a disk that damaged the record
 * after it was written (the storage may be open: the file is changed in place).
 */
export function damageEntry(segment: string, index: number): void {
  const bytes = readFileSync(segment);
  const record = readSegment(bytes).records.find(
    (r) => r.kind === RecordKind.entry && readNumber(r.payload, 0) === index,
  );
  if (record === undefined) throw new Error(`no record of entry ${index} in ${segment}`);
  // After the record's header and the entry's index, term and type.
  const at = record.offset + recordHeaderBytes + 17;
  overwrite(segment, at, Buffer.from([bytes[at]! ^ 0xff]));
}

/** Writes `bytes` over a file at `at`, in place (the file may be open elsewhere). */
export function overwrite(path: string, at: number, bytes: Uint8Array): void {
  const fd = openSync(path, "r+");
  try {
    writeSync(fd, bytes, 0, bytes.byteLength, at);
  } finally {
    closeSync(fd);
  }
}
