/**
 * A key source that exists only in the test suite: `toy-vault:NAME` reads key NAME from the JSON
 * object in the file named by TOY_VAULT_FILE, the way a secret manager holds named secrets. Loaded
 * into the built CLI with `node --import` (test/support/cli.ts, `nodeArgs`), it proves that a new
 * source is one object handed to registerKeySource, with no change to the rest of dbcrypt.
 */
import { readFileSync } from "node:fs";
import { registerKeySource } from "../../../dist/key-sources/registry.js";

const PREFIX = "toy-vault:";

registerKeySource({
  name: "toy-vault",
  matches: (reference) => reference.startsWith(PREFIX),
  resolve: async (reference, label) => {
    const vault = JSON.parse(readFileSync(process.env.TOY_VAULT_FILE ?? "", "utf8"));
    const key = vault[reference.slice(PREFIX.length)];
    if (typeof key !== "string") throw new Error(`${label}: the toy vault has no key ${reference.slice(PREFIX.length)}`);
    return key;
  },
  // The name of a secret reveals nothing, so a continue command may repeat it.
  describe: (reference) => reference,
});
