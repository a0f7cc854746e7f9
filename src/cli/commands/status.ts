import { Option, type Command } from "commander";
import { KEY_ID_FORMS, looksLikeKeyId } from "../../crypto/key-id.js";
import { DbcryptError } from "../../errors.js";
import { status } from "../../ops/status.js";
import { formatStatus } from "../../report/human.js";
import { addGlobalOptions, DEFAULT_BATCH_SIZE, parsePositiveInteger, withReadSession, writeStdout, type GlobalFlags } from "../common.js";
import { collectValues, fromFlagOrEnv, keySourceContext, parseKeyList } from "../key-input.js";
import type { CommandOutcome } from "../exit-codes.js";

interface StatusFlags extends GlobalFlags {
  keys?: string[];
  verify?: boolean;
  requireKey?: string;
  requireEncrypted?: boolean;
  batchSize: number;
}

export function registerStatus(program: Command, run: (body: () => Promise<CommandOutcome>) => Promise<void>): void {
  addGlobalOptions(
    program
      .command("status")
      .description("census of encrypted columns and keys; exits 3 on any problem (a CI gate). Never writes")
      .option("--keys <keys>", "keys to check the data and canaries against: comma-separated keys or sources (@FILE, file://, env://, exec:, age:, @-); repeatable (env DBCRYPT_KEYS)", collectValues)
      .option("--verify", "decrypt every value with --keys and report rows that fail, by primary key")
      .option("--require-key <id>", "also fail unless every value is under this key id")
      .option("--require-encrypted", "also fail if any value that should be encrypted is plaintext")
      .addOption(new Option("--batch-size <rows>", "rows per read with --verify").default(DEFAULT_BATCH_SIZE).argParser(parsePositiveInteger)),
  ).action((flags: StatusFlags) =>
    run(async () => {
      const keys = await parseKeyList(fromFlagOrEnv(flags.keys, "DBCRYPT_KEYS"), "--keys", keySourceContext(flags, [flags.keys]));
      // A Kubernetes encryption config brings its own keys.
      if (flags.verify && keys.length === 0 && flags.encryptionConfig === undefined) throw new DbcryptError("usage", "--verify needs the keys to decrypt with", { hint: "pass --keys or set DBCRYPT_KEYS" });
      if (flags.requireKey !== undefined && !looksLikeKeyId(flags.requireKey)) {
        throw new DbcryptError("usage", `--require-key takes a key id (${KEY_ID_FORMS}), not a key`, { hint: "`dbcrypt keys id @FILE` prints a key's id" });
      }
      const report = await withReadSession(flags, "status", (session) =>
        status(session, {
          keys,
          requireKeyId: flags.requireKey,
          requireEncrypted: Boolean(flags.requireEncrypted),
          verify: Boolean(flags.verify),
          batchSize: flags.batchSize,
        }),
      );
      writeStdout(flags.json ? JSON.stringify({ version: 1, healthy: report.problems.length === 0, ...report }, null, 2) : formatStatus(report));
      return { kind: "health", healthy: report.problems.length === 0 };
    }),
  );
}
