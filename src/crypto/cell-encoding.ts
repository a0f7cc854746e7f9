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

const BASE64_SHAPE = /^[A-Za-z0-9+/_-]*={0,2}$/;
const HEX_SHAPE = /^[0-9a-f]+$/;

function withoutLineBreaks(raw: string): string {
  // Line breaks are skipped, as Go's and libsodium's decoders skip them: a wrapped or
  // newline-terminated cell is still ciphertext, and must never be taken for plaintext.
  return raw.includes("\n") || raw.includes("\r") ? raw.replace(/[\r\n]/g, "") : raw;
}

/**
 * The readings of a cell's text, each with its bytes, most specific first (hex before base64,
 * whose alphabet contains hex's). Base64 is read once whatever its alphabet and padding (the same
 * bytes either way) and strictly: one alphabet only, `=` only at the end and only to a multiple of
 * four, no impossible length, and zero trailing bits, so the text is the canonical spelling of
 * its bytes. The reported spelling is the one the text shows (standard, padded where it cannot
 * tell); a rewrite settles the rest from its column (rewriteSpelling).
 */
export function decodeCellCandidates(raw: string, minBytes: number): { encoding: CellEncoding; bytes: Buffer }[] {
  const found: { encoding: CellEncoding; bytes: Buffer }[] = [];
  const text = withoutLineBreaks(raw);
  if (text.length === 0) return found;
  if (text.length % 2 === 0 && HEX_SHAPE.test(text)) push(found, "hex", Buffer.from(text, "hex"), minBytes);
  if (!BASE64_SHAPE.test(text)) return found;
  const urlSafe = text.includes("-") || text.includes("_");
  if (urlSafe && (text.includes("+") || text.includes("/"))) return found;
  const body = text.endsWith("=") ? text.replace(/=+$/, "") : text;
  const padded = body.length !== text.length;
  if (body.length % 4 === 1 || (padded && text.length % 4 !== 0) || (padded && body.length % 4 === 0)) return found;
  const alphabet = urlSafe ? "base64url" : "base64";
  const bytes = Buffer.from(body, alphabet);
  // Zero trailing bits: the last, partial quantum must re-encode to itself.
  const tail = body.length % 4;
  if (tail !== 0 && Buffer.from(body.slice(-tail), alphabet).toString(alphabet).replace(/=+$/, "") !== body.slice(-tail)) return found;
  const encoding: CellEncoding = urlSafe ? (padded ? "base64url" : tail === 0 ? "base64url" : "base64url-unpadded") : padded || tail === 0 ? "base64" : "base64-unpadded";
  if (found.some((candidate) => candidate.bytes.equals(bytes))) return found;
  push(found, encoding, bytes, minBytes);
  return found;
}

/**
 * Whether the text has the shape of a cell of at least `minBytes` in some spelling, without
 * decoding it: what tells ciphertext from plaintext, for every value of every row.
 */
export function hasCellShape(raw: string, minBytes: number): boolean {
  const text = withoutLineBreaks(raw);
  if (text.length % 2 === 0 && text.length >= minBytes * 2 && HEX_SHAPE.test(text)) return true;
  if (!BASE64_SHAPE.test(text)) return false;
  return Math.floor((text.replace(/=+$/, "").length * 3) / 4) >= minBytes;
}

function push(found: { encoding: CellEncoding; bytes: Buffer }[], encoding: CellEncoding, bytes: Buffer, minBytes: number): void {
  if (bytes.length >= minBytes) found.push({ encoding, bytes });
}

/**
 * What a cell's text says about its column's spelling, as tokens to tally: `hex` or `base64` when a
 * tag-confirmed reading says which (`opened`), and for base64 the alphabet and padding, but only
 * where the text tells them apart (+/ or -_, = or a length that needs none). A cell that tells
 * nothing adds nothing, so a column is never learned from cells that fit every spelling.
 */
export function spellingEvidence(text: string, opened: string | undefined): string[] {
  if (opened === "hex") return ["hex"];
  const tokens = opened === undefined ? [] : ["base64"];
  if (/[+/]/.test(text)) tokens.push("alphabet:standard");
  else if (/[-_]/.test(text)) tokens.push("alphabet:url");
  if (text.includes("=")) tokens.push("padding:padded");
  else if (text.replace(/[\r\n]/g, "").length % 4 !== 0) tokens.push("padding:unpadded");
  return tokens;
}

function compose(alphabet: "standard" | "url", padded: boolean): CellEncoding {
  if (alphabet === "standard") return padded ? "base64" : "base64-unpadded";
  return padded ? "base64url" : "base64url-unpadded";
}

function partsOf(encoding: CellEncoding): { alphabet: "standard" | "url"; padded: boolean } {
  return { alphabet: encoding.startsWith("base64url") ? "url" : "standard", padded: !encoding.endsWith("unpadded") };
}

/** The column's spelling from its cells' evidence; what the evidence does not settle comes from `fallback`. */
export function columnSpelling(evidence: ReadonlyMap<string, number>, fallback: CellEncoding): CellEncoding {
  const count = (token: string) => evidence.get(token) ?? 0;
  if (count("hex") > count("base64")) return "hex";
  const base = partsOf(fallback === "hex" ? "base64" : fallback);
  const alphabet = count("alphabet:standard") === count("alphabet:url") ? base.alphabet : count("alphabet:standard") > count("alphabet:url") ? "standard" : "url";
  const padded = count("padding:padded") === count("padding:unpadded") ? base.padded : count("padding:padded") > count("padding:unpadded");
  return compose(alphabet, padded);
}

/**
 * The spelling a rewritten cell is written in: hex when its tag-confirmed reading was hex; for
 * base64, what the old cell's own text shows, then the column's, then `fallback`. A cell that was
 * plaintext takes the column's spelling.
 */
export function rewriteSpelling(oldCell: string | null, opened: string | undefined, column: string | undefined, fallback: CellEncoding): CellEncoding {
  const columnEncoding = isCellEncoding(column) ? column : fallback;
  if (oldCell === null || opened === undefined) return columnEncoding;
  if (opened === "hex") return "hex";
  const own = spellingEvidence(oldCell, undefined);
  const base = partsOf(columnEncoding === "hex" ? fallback === "hex" ? "base64" : fallback : columnEncoding);
  const alphabet = own.includes("alphabet:standard") ? "standard" : own.includes("alphabet:url") ? "url" : base.alphabet;
  const padded = own.includes("padding:padded") ? true : own.includes("padding:unpadded") ? false : base.padded;
  return compose(alphabet, padded);
}
