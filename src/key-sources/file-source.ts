import { readFileSync } from "node:fs";
import { DbcryptError } from "../errors.js";
import type { KeySource } from "./key-source.js";
import { readPrivateFile } from "./private-file.js";

/** `file://PATH`: everything after the scheme is the path (file:///etc/x is /etc/x, file://x is ./x). */
const FILE_URL = "file://";

function pathOf(entry: string): string {
  return entry.startsWith(FILE_URL) ? entry.slice(FILE_URL.length) : entry.slice(1);
}

/** `@PATH` and `file://PATH`: a file with the key (or one key per line), or a JSON key file. '@' is not in the base64 alphabet. */
export const fileSource: KeySource = {
  name: "file",
  matches: (entry) => (entry.startsWith("@") && entry !== "@-") || entry.startsWith(FILE_URL),
  resolve: async (entry, label, context) => {
    const path = pathOf(entry);
    if (path === "") throw new DbcryptError("bad_key", `${label}: ${entry} names no file`, { hint: "write @PATH or file://PATH" });
    return readPrivateFile(path, { label, what: "key file", allowInsecure: context.allowInsecureKeyFile, hint: "check the path after @ or file://" }).toString("utf8");
  },
  describe: (entry) => entry,
};

/** `@-`: the keys on standard input, so they never appear in `ps` or shell history. Synchronous: fd 0 may be a pipe, a file or a terminal. */
export const stdinSource: KeySource = {
  name: "stdin",
  matches: (entry) => entry === "@-",
  resolve: async (_entry, label) => {
    try {
      return readFileSync(0, "utf8");
    } catch (error) {
      throw new DbcryptError("bad_key", `${label}: cannot read keys from standard input: ${(error as NodeJS.ErrnoException).code ?? "read error"}`, { hint: "pipe the keys in, or use @FILE" });
    }
  },
  describe: (entry) => entry,
};
