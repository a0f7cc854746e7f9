/**
 * Node's base64 decoder accepts almost anything (URL-safe characters, missing padding, junk), so a
 * typo in a key would silently become a different key. Coder decodes with Go's StdEncoding; this
 * accepts exactly what that accepts for keys and values: the standard alphabet with `=` padding.
 * Go also skips CR/LF inside the text; keys pasted from a file may carry them, so they are dropped
 * the same way.
 */
const STANDARD_PADDED = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export type Base64Problem = "empty" | "url_safe_alphabet" | "missing_padding" | "invalid_character";

export function findBase64Problem(text: string): Base64Problem | undefined {
  const compact = text.replace(/[\r\n]/g, "");
  if (compact.length === 0) return "empty";
  if (STANDARD_PADDED.test(compact)) return undefined;
  if (/[-_]/.test(compact) && /^[A-Za-z0-9\-_=]+$/.test(compact)) return "url_safe_alphabet";
  if (/^[A-Za-z0-9+/]+$/.test(compact)) return "missing_padding";
  return "invalid_character";
}

export function decodeStrictBase64(text: string): Buffer | undefined {
  // Fast path for what Go's encoder writes (every stored value): re-encoding gives back the same
  // text only when it was standard, padded and canonical. The regex check below is the slow path.
  const decoded = Buffer.from(text, "base64");
  if (text.length > 0 && decoded.toString("base64") === text) return decoded;
  if (findBase64Problem(text) !== undefined) return undefined;
  return Buffer.from(text.replace(/[\r\n]/g, ""), "base64");
}

/** Describes a problem in words for an error message; never echoes the input. */
export function describeBase64Problem(problem: Base64Problem): string {
  switch (problem) {
    case "empty":
      return "is empty";
    case "url_safe_alphabet":
      return "uses the URL-safe base64 alphabet (- and _); use standard base64 (+ and /)";
    case "missing_padding":
      return "is missing its = padding; use standard padded base64";
    case "invalid_character":
      return "contains characters that are not standard base64";
  }
}
