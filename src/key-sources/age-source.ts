import { readFileSync } from "node:fs";
import { DbcryptError } from "../errors.js";
import { decryptAgeFile } from "./age-file.js";
import type { KeySource } from "./key-source.js";

const AGE_PREFIX = "age:";

/**
 * `age:PATH`: a key kept in a passphrase-protected age file, the backup `dbcrypt keys export`
 * writes. The file is ciphertext, so its mode is not checked; the passphrase comes from the
 * context (--passphrase-file, --passphrase-env or a prompt).
 */
export const ageSource: KeySource = {
  name: "age",
  matches: (entry) => entry.startsWith(AGE_PREFIX),
  resolve: async (entry, _label, context) => {
    const path = entry.slice(AGE_PREFIX.length);
    if (path === "") throw new DbcryptError("bad_key", "age: names no file", { hint: "write age:PATH" });
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch (error) {
      throw new DbcryptError("bad_key", `cannot read age file ${path}: ${(error as NodeJS.ErrnoException).code ?? "read error"}`, { hint: "check the path after age:" });
    }
    return decryptAgeFile(bytes, await context.passphrase(entry), entry);
  },
  describe: (entry) => entry,
};
