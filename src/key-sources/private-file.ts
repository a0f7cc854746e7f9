import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { DbcryptError } from "../errors.js";

/** Key files are small; anything larger is the wrong file, and is not read into memory whole. */
const MAX_KEY_FILE_BYTES = 1 << 20;

/**
 * Reads a file that holds a secret (a key, a passphrase, an encryption config), refusing one that
 * group or others can read unless the operator allowed it: a key left world-readable is already
 * half leaked, and saying so at the moment it is used is when it gets fixed. The mode is checked on
 * the open file, so the file checked is the file read. Errors name the path and the mode, never
 * the contents; `label` (the flag, or "") leads them.
 */
export function readPrivateFile(path: string, options: { label: string; what: string; allowInsecure: boolean; hint: string }): Buffer {
  const { what, allowInsecure, hint } = options;
  const label = options.label === "" ? "" : `${options.label}: `;
  const unreadable = (error: unknown) => new DbcryptError("bad_key", `${label}cannot read ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? "read error"}`, { hint });
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (error) {
    throw unreadable(error);
  }
  try {
    const { mode, size } = fstatSync(fd);
    if ((mode & 0o044) !== 0 && !allowInsecure) {
      const octal = (mode & 0o777).toString(8).padStart(4, "0");
      throw new DbcryptError("bad_key", `${label}${what} ${path} is readable by ${(mode & 0o040) !== 0 ? "group" : "others"}${(mode & 0o044) === 0o044 ? " and others" : ""} (mode ${octal})`, {
        hint: `chmod 600 ${path}, or pass --allow-insecure-key-file`,
      });
    }
    if (size > MAX_KEY_FILE_BYTES) throw new DbcryptError("bad_key", `${label}${what} ${path} is ${size} bytes; a key file holds a few lines`, { hint });
    const contents = Buffer.alloc(size);
    let filled = 0;
    while (filled < size) {
      const read = readSync(fd, contents, filled, size - filled, filled);
      if (read === 0) break;
      filled += read;
    }
    return contents.subarray(0, filled);
  } catch (error) {
    throw error instanceof DbcryptError ? error : unreadable(error);
  } finally {
    closeSync(fd);
  }
}
