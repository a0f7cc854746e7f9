import { readFileSync } from "node:fs";
import { DbcryptError } from "../errors.js";
import type { KeySource } from "./key-source.js";

/** The placeholder shown where a key was given literally. */
export const LITERAL_KEY_PLACEHOLDER = "<key>";

/** Synchronous on purpose: stdin (fd 0) may be a pipe, a file or a terminal, and this reads all three. */
async function readKeyFile(path: string | 0, shown: string, label: string): Promise<string> {
  try {
    return readFileSync(path, "utf8").trim();
  } catch (error) {
    throw new DbcryptError("bad_key", `${label}: cannot read key file ${shown}: ${(error as NodeJS.ErrnoException).code ?? "read error"}`, {
      hint: "check the path after @",
    });
  }
}

/** `@-`: the keys on standard input, so they never appear in `ps` or shell history. */
export const stdinSource: KeySource = {
  name: "stdin",
  matches: (reference) => reference === "@-",
  resolve: (_reference, label) => readKeyFile(0, "(stdin)", label),
  describe: (reference) => reference,
};

/** `@PATH`: a file with one key per line or comma-separated. '@' is not in the base64 alphabet. */
export const fileSource: KeySource = {
  name: "file",
  matches: (reference) => reference.startsWith("@") && reference !== "@-",
  resolve: (reference, label) => readKeyFile(reference.slice(1), reference.slice(1), label),
  describe: (reference) => reference,
};

/** Anything else is the key text itself (visible in `ps`; the docs say to prefer @FILE). */
export const literalSource: KeySource = {
  name: "literal",
  matches: () => true,
  resolve: async (reference) => reference,
  describe: () => LITERAL_KEY_PLACEHOLDER,
};
