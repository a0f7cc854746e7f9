import { DbcryptError } from "../../errors.js";
import { coderScheme } from "./coder-aes256gcm.js";
import type { ValueScheme } from "./value-scheme.js";

/** The value schemes dbcrypt knows, by name. A new scheme is one file and one line here. */
const schemes = new Map<string, ValueScheme>([[coderScheme.name, coderScheme]]);

export const DEFAULT_SCHEME = coderScheme;

/** For schemes defined outside src/ (the test suite's toy scheme is loaded this way). */
export function registerScheme(scheme: ValueScheme): void {
  schemes.set(scheme.name, scheme);
}

export function knownSchemes(): string[] {
  return [...schemes.keys()];
}

export function schemeNamed(name: string): ValueScheme {
  const scheme = schemes.get(name);
  if (scheme === undefined) {
    throw new DbcryptError("bad_config", `unknown value scheme "${name}"`, { hint: `known schemes: ${knownSchemes().join(", ")}` });
  }
  return scheme;
}
