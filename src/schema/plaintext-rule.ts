import type { PlaintextRule } from "./model.js";

/**
 * Coder trims with Go's strings.TrimSpace. The census does the same test in SQL, where only ASCII
 * whitespace is portable, so both sides use exactly this set to agree on what "blank" means.
 */
const ASCII_WHITESPACE = /^[ \t\n\r\v\f]*$/;
const EMPTY_OBJECT = /^[ \t\n\r\v\f]*\{\}[ \t\n\r\v\f]*$/;

export function isBlank(value: string): boolean {
  return ASCII_WHITESPACE.test(value);
}

export function isEmptyObject(value: string): boolean {
  return EMPTY_OBJECT.test(value);
}

export function staysPlaintext(rule: PlaintextRule, value: string | null): boolean {
  if (value === null) return true;
  switch (rule) {
    case "never":
      return false;
    case "empty":
      return value === "";
    case "blank":
      return isBlank(value);
    case "blank-or-empty-object":
      return isBlank(value) || isEmptyObject(value);
  }
}
