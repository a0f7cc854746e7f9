/**
 * How a binary ciphertext is spelled in a text column, for schemes whose applications do not agree
 * on one: libsodium-wrappers' to_base64 defaults to URL-safe without padding, Node's Buffer to
 * standard padded, others write hex. A cell is read in every spelling it is valid in (strictly:
 * canonical text only, so one spelling never silently decodes another), the scheme's
 * authentication tag picks the right one, and a rewrite keeps the spelling it read.
 */
export type CellEncoding = "base64" | "base64-unpadded" | "base64url" | "base64url-unpadded" | "hex";

export const CELL_ENCODINGS: readonly CellEncoding[] = ["base64", "base64-unpadded", "base64url", "base64url-unpadded", "hex"];

export function isCellEncoding(text: unknown): text is CellEncoding {
  return typeof text === "string" && (CELL_ENCODINGS as readonly string[]).includes(text);
}

export function encodeCell(bytes: Uint8Array, encoding: CellEncoding): string {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (encoding) {
    case "base64":
      return buffer.toString("base64");
    case "base64-unpadded":
      return buffer.toString("base64").replace(/=+$/, "");
    case "base64url":
      return padded(buffer.toString("base64url"));
    case "base64url-unpadded":
      return buffer.toString("base64url");
    case "hex":
      return buffer.toString("hex");
  }
}

function padded(text: string): string {
  return text.length % 4 === 0 ? text : text + "=".repeat(4 - (text.length % 4));
}

/**
 * Every spelling the text is canonically valid in, with its bytes, most specific first (hex before
 * base64, whose alphabet contains hex's). Canonical means re-encoding gives the same text back, so
 * stray characters, wrong padding or non-zero trailing bits make a spelling not apply.
 */
export function decodeCellCandidates(text: string, minBytes: number): { encoding: CellEncoding; bytes: Buffer }[] {
  const found: { encoding: CellEncoding; bytes: Buffer }[] = [];
  if (text.length === 0) return found;
  if (text.length % 2 === 0 && /^[0-9a-f]+$/.test(text)) push(found, "hex", Buffer.from(text, "hex"), minBytes);
  const urlSafe = /[-_]/.test(text);
  const standard = /[+/]/.test(text);
  if (urlSafe && standard) return found;
  const alphabets = urlSafe ? (["base64url", "base64url-unpadded"] as const) : standard ? (["base64", "base64-unpadded"] as const) : (["base64", "base64-unpadded", "base64url", "base64url-unpadded"] as const);
  for (const encoding of alphabets) {
    const bytes = Buffer.from(text, encoding.startsWith("base64url") ? "base64url" : "base64");
    if (encodeCell(bytes, encoding) !== text) continue;
    // Text of a length that needs no padding is valid padded and unpadded, as the same bytes.
    if (found.some((candidate) => candidate.bytes.equals(bytes))) continue;
    push(found, encoding, bytes, minBytes);
  }
  return found;
}

function push(found: { encoding: CellEncoding; bytes: Buffer }[], encoding: CellEncoding, bytes: Buffer, minBytes: number): void {
  if (bytes.length >= minBytes) found.push({ encoding, bytes });
}

/** Every encoding in which the text is canonical, whatever the bytes (for telling a column's spelling). */
export function spellingsOf(text: string): CellEncoding[] {
  if (text.length === 0) return [];
  return CELL_ENCODINGS.filter((encoding) => {
    if (encoding === "hex") return text.length % 2 === 0 && /^[0-9a-f]+$/.test(text);
    if (encoding.startsWith("base64url") ? /[+/]/.test(text) : /[-_]/.test(text)) return false;
    return encodeCell(Buffer.from(text, encoding.startsWith("base64url") ? "base64url" : "base64"), encoding) === text;
  });
}
