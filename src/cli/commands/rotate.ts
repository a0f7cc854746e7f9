import type { Command } from "commander";
import { DbcryptError } from "../../errors.js";
import { rotateOperation } from "../../ops/rotate.js";
import { addWriteOptions, requireValue, runWriteCommand, type WriteFlags } from "../common.js";
import { collectValues, fromFlagOrEnv, keySourceContext, parseKeyList, parseSingleKey } from "../key-input.js";
import type { CommandOutcome } from "../exit-codes.js";

interface RotateFlags extends WriteFlags {
  newKey?: string[];
  oldKeys?: string[];
  skipUnopenable?: boolean;
}

export function registerRotate(program: Command, run: (body: () => Promise<CommandOutcome>) => Promise<void>): void {
  addWriteOptions(
    program
      .command("rotate")
      .description("re-encrypt every value under a new key, encrypt leftover plaintext, then revoke the old keys")
      .option("--new-key <key>", "the new primary key: base64, or a source (@FILE, file://, env://, exec:, age:, @-) (env DBCRYPT_NEW_KEY)", collectValues)
      .option("--old-keys <keys>", "keys the data may be under now: comma-separated keys or sources; repeatable (env DBCRYPT_OLD_KEYS)", collectValues)
      .option("--skip-unopenable", "where values carry no key id: report values no supplied key opens and leave them, instead of refusing to start"),
  ).action((flags: RotateFlags) =>
    run(async () => {
      const sources = keySourceContext(flags, [flags.newKey, flags.oldKeys]);
      const given = await parseSingleKey(fromFlagOrEnv(flags.newKey, "DBCRYPT_NEW_KEY"), "--new-key", sources);
      // A Kubernetes encryption config names its own write key; otherwise --new-key is required.
      const newKey = flags.newEncryptionConfig !== undefined && given === undefined ? undefined : requireValue(given, "no new key given: --new-key is required", "pass --new-key or set DBCRYPT_NEW_KEY");
      const oldKeys = await parseKeyList(fromFlagOrEnv(flags.oldKeys, "DBCRYPT_OLD_KEYS"), "--old-keys", sources);
      const repeated = newKey === undefined ? -1 : oldKeys.findIndex((key) => key.id === newKey.id);
      if (repeated >= 0) throw new DbcryptError("bad_key", `--old-keys key ${repeated + 1} is the same as the new key`, { hint: "list the new key only in --new-key" });
      return runWriteCommand(flags, "rotate", rotateOperation, (request) => ({ ...request, newKey, oldKeys, skipUnopenable: Boolean(flags.skipUnopenable) }));
    }),
  );
}
