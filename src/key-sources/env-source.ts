import { DbcryptError } from "../errors.js";
import type { KeySource } from "./key-source.js";

const ENV_URL = "env://";
const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `env://VAR`: the key text in an environment variable, which (unlike an argument) `ps` does not show. */
export const envSource: KeySource = {
  name: "env",
  matches: (entry) => entry.startsWith(ENV_URL),
  resolve: async (entry) => {
    const name = entry.slice(ENV_URL.length);
    if (!VARIABLE_NAME.test(name)) throw new DbcryptError("bad_key", `${entry} does not name an environment variable`, { hint: "write env://NAME with letters, digits and _" });
    const value = process.env[name];
    if (value === undefined) throw new DbcryptError("bad_key", `${entry}: ${name} is not set`, { hint: `export ${name} before running dbcrypt` });
    if (value.trim() === "") throw new DbcryptError("bad_key", `${entry}: ${name} is empty`, { hint: `put the key in ${name}` });
    return value;
  },
  describe: (entry) => entry,
};
