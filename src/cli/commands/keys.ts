import { InvalidArgumentError, Option, type Command } from "commander";
import { DEFAULT_SCRYPT_WORK_FACTOR } from "../../key-sources/age-file.js";
import { knownSchemes, schemeNamed } from "../../crypto/schemes/registry.js";
import { appPresetNamed } from "../../schema/app-presets.js";
import { loadConfigFile, PRESET_NAMES, type PresetName } from "../../schema/config-file.js";
import { EncryptionKey } from "../../crypto/encryption-key.js";
import { KEY_ID_FORMS, looksLikeKeyId } from "../../crypto/key-id.js";
import { DbcryptError } from "../../errors.js";
import { checkRevokeKey, initKeysTable, listKeys, revokeKey } from "../../ops/keys.js";
import { formatKeyListing } from "../../report/human.js";
import { addGlobalOptions, addKeySourceOptions, note, withReadSession, withSession, writeStdout, type GlobalFlags } from "../common.js";
import { confirmStep } from "../interaction.js";
import { keySourceContext, newBackupPassphrase, parseSingleKey, type KeySourceFlags } from "../key-input.js";
import { exportKeyBackup } from "../key-backup.js";
import { DONE, type CommandOutcome } from "../exit-codes.js";

export function registerKeys(program: Command, run: (body: () => Promise<CommandOutcome>) => Promise<void>): void {
  const keys = program.command("keys").description("generate, fingerprint, list, revoke keys; create the keys table");

  withSchemeChoice(keys.command("generate").description("print a new random key (32 bytes from the OS CSPRNG, base64); its id goes to stderr"))
    .option("--json", "print {\"key\", \"id\"} as JSON")
    .action((flags: SchemeChoice & { json?: boolean }) =>
      run(async () => {
        const key = EncryptionKey.generate();
        const id = idUnder(key, flags);
        if (flags.json) writeStdout(JSON.stringify({ key: key.exportBase64(), id }));
        else {
          writeStdout(key.exportBase64());
          process.stderr.write(`key id ${id}\n`);
        }
        return DONE;
      }),
    );

  addKeySourceOptions(withSchemeChoice(keys.command("id").description("print the key id of a key (the key, or a source: @FILE, file://, env://, exec:, age:, @-)")))
    .argument("<key>", "the key, base64, or a key source")
    .option("--json", "print {\"id\", \"source\"} as JSON")
    .action((keyText: string, flags: SchemeChoice & KeySourceFlags & { json?: boolean }) =>
      run(async () => {
        const key = await requiredKey(keyText, flags);
        const id = idUnder(key, flags);
        writeStdout(flags.json ? JSON.stringify({ id, source: key.source }) : id);
        return DONE;
      }),
    );

  addKeySourceOptions(
    keys
      .command("export")
      .description("write a key to a passphrase-protected age file (opens with `age -d` and with age:FILE)")
      .argument("<key>", "the key, base64, or a key source (@FILE, file://, env://, exec:, age:)")
      .requiredOption("--out <file>", "the backup file to write (mode 0600)")
      .option("--armor", "write ASCII armor (PEM-like text) instead of binary")
      .addOption(new Option("--work-factor <log2N>", "scrypt work factor, 2^N (age's default 18; at most 20)").default(DEFAULT_SCRYPT_WORK_FACTOR).argParser(parseWorkFactor))
      .option("--force", "replace the file if it exists")
      .option("--json", "print {\"id\", \"source\", \"path\", \"format\", \"workFactor\"} as JSON"),
  ).action((keyText: string, flags: KeySourceFlags & { out: string; armor?: boolean; workFactor: number; force?: boolean; json?: boolean }) =>
    run(async () => {
      const key = await requiredKey(keyText, flags);
      const passphrase = await newBackupPassphrase(flags, `the backup ${flags.out}`);
      await exportKeyBackup(key, passphrase, { path: flags.out, armored: Boolean(flags.armor), workFactor: flags.workFactor, replace: Boolean(flags.force) });
      if (flags.json) writeStdout(JSON.stringify({ version: 1, id: key.id, source: key.source, path: flags.out, format: "age", workFactor: flags.workFactor }));
      else writeStdout(`exported key ${key.id} (from ${key.source}) to ${flags.out}: age, passphrase, scrypt work factor ${flags.workFactor}; checked by opening it again`);
      return DONE;
    }),
  );

  addGlobalOptions(keys.command("list").description("show the keys table and how many values each key encrypts")).action((flags: GlobalFlags) =>
    run(async () => {
      const listing = await withReadSession(flags, "keys list", listKeys);
      writeStdout(flags.json ? JSON.stringify({ version: 1, ...listing }, null, 2) : formatKeyListing(listing));
      return DONE;
    }),
  );

  addGlobalOptions(keys.command("revoke").description("revoke a key that no value uses any more").argument("<id>", "key id (7 hex characters)"))
    .option("-y, --yes", "confirm without a prompt")
    .option("--dry-run", "check that the key could be revoked, change nothing")
    .action((keyId: string, flags: GlobalFlags & { yes?: boolean; dryRun?: boolean }) =>
      run(async () => {
        if (!looksLikeKeyId(keyId)) throw new DbcryptError("usage", `keys revoke takes a key id (${KEY_ID_FORMS}), not a key`, { hint: "`dbcrypt keys list` shows the ids" });
        const outcome = flags.dryRun
          ? await withReadSession(flags, "keys revoke", (session) => checkRevokeKey(session, keyId))
          : await withSession(flags, "keys revoke", (session) =>
              revokeKey(session, { keyId, confirm: (question) => confirmStep(question, { yes: Boolean(flags.yes), command: "keys revoke", severe: false }) }),
            );
        const messages = { "revoked": `revoked key ${keyId}`, "already-revoked": `key ${keyId} was already revoked; nothing to do`, "dry-run": `key ${keyId} is unused and can be revoked (dry run, nothing written)` };
        writeStdout(flags.json ? JSON.stringify({ version: 1, keyId, outcome }) : messages[outcome]);
        return DONE;
      }),
    );

  addGlobalOptions(keys.command("init").description("create the keys table (Coder's definition) when it is absent")).action((flags: GlobalFlags) =>
    run(async () => {
      const outcome = await withSession(flags, "keys init", initKeysTable);
      if (flags.json) writeStdout(JSON.stringify({ version: 1, outcome }));
      else if (outcome === "created") writeStdout("created the keys table");
      else note(flags, "the keys table already exists; nothing to do");
      return DONE;
    }),
  );
}

async function requiredKey(reference: string, flags: KeySourceFlags): Promise<EncryptionKey> {
  const key = await parseSingleKey(reference, "key", keySourceContext(flags, [reference]));
  if (key === undefined) throw new DbcryptError("usage", "no key given", { hint: "pass the key or a key source as the argument" });
  return key;
}

function parseWorkFactor(text: string): number {
  if (!/^[0-9]+$/.test(text) || Number(text) < 10 || Number(text) > 20) throw new InvalidArgumentError("must be a whole number from 10 to 20");
  return Number(text);
}

interface SchemeChoice {
  scheme?: string;
  preset?: PresetName;
}

/** A key's id depends on the scheme (each labels its cipher), so these commands can be told which. */
function withSchemeChoice(command: Command): Command {
  return command
    .addOption(new Option("--scheme <name>", "the value scheme whose key id to print (default: the preset's, else coder)").choices(knownSchemes()))
    .addOption(new Option("--preset <name>", "the application preset whose scheme to use").choices(PRESET_NAMES));
}

/** --scheme, else --preset's scheme, else the config file's (scheme, then preset), else Coder's. */
function idUnder(key: EncryptionKey, choice: SchemeChoice): string {
  const presetScheme = (preset: PresetName | undefined) => appPresetNamed(preset)?.scheme;
  const fromFlags = choice.scheme ?? presetScheme(choice.preset);
  const config = fromFlags === undefined ? loadConfigFile(undefined).config : {};
  const name = fromFlags ?? config.scheme ?? presetScheme(config.preset);
  if (name === "k8s-encryption-config") {
    throw new DbcryptError("usage", "Kubernetes encryption config keys are named in their file; their id is provider:name", { hint: "`dbcrypt status --preset obot` lists the ids" });
  }
  return name === undefined ? key.id : key.toSchemeKey(schemeNamed(name)).id;
}
