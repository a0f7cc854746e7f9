import type { Command } from "commander";
import { decryptOperation } from "../../ops/decrypt.js";
import { addWriteOptions, requireValue, runWriteCommand, type WriteFlags } from "../common.js";
import { collectValues, fromFlagOrEnv, keySourceContext, parseKeyList } from "../key-input.js";
import type { CommandOutcome } from "../exit-codes.js";

interface DecryptFlags extends WriteFlags {
  keys?: string[];
  skipUnopenable?: boolean;
}

export function registerDecrypt(program: Command, run: (body: () => Promise<CommandOutcome>) => Promise<void>): void {
  addWriteOptions(
    program
      .command("decrypt")
      .description("turn encryption off: write every value back as plaintext, then revoke the keys")
      // A separate variable from status's DBCRYPT_KEYS, as in Coder, so decryption is never accidental.
      .option("--keys <keys>", "keys the data is under: comma-separated keys or sources (@FILE, file://, env://, exec:, age:, @-); repeatable (env DBCRYPT_DECRYPT_KEYS)", collectValues)
      .option("--skip-unopenable", "where values carry no key id: report values no supplied key opens and leave them, instead of refusing to start"),
  ).action((flags: DecryptFlags) =>
    run(async () => {
      const keys = await parseKeyList(fromFlagOrEnv(flags.keys, "DBCRYPT_DECRYPT_KEYS"), "--keys", keySourceContext(flags, [flags.keys]));
      // A Kubernetes encryption config brings its own keys.
      if (flags.encryptionConfig === undefined) requireValue(keys.length > 0 ? keys : undefined, "no keys given: --keys is required", "pass --keys or set DBCRYPT_DECRYPT_KEYS");
      return runWriteCommand(flags, "decrypt", decryptOperation, (request) => ({ ...request, keys, skipUnopenable: Boolean(flags.skipUnopenable) }));
    }),
  );
}
