import { Option, type Command } from "commander";
import { knownSchemes, schemeNamed } from "../../crypto/schemes/registry.js";
import { appPresetNamed } from "../../schema/app-presets.js";
import { loadConfigFile, PRESET_NAMES, type PresetName } from "../../schema/config-file.js";
import { EncryptionKey } from "../../crypto/encryption-key.js";
import { KEY_ID_FORMS, looksLikeKeyId } from "../../crypto/key-id.js";
import { DbcryptError } from "../../errors.js";
import { checkRevokeKey, initKeysTable, listKeys, revokeKey } from "../../ops/keys.js";
import { formatKeyListing } from "../../report/human.js";
import { addGlobalOptions, note, withReadSession, withSession, writeStdout, type GlobalFlags } from "../common.js";
import { confirmStep } from "../interaction.js";
import { resolveKeyReference } from "../../key-sources/registry.js";
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

  withSchemeChoice(keys.command("id").description("print the key id of a key (give the key as an argument, @FILE, or @- for stdin)"))
    .argument("<key>", "the key, base64")
    .option("--json", "print {\"id\"} as JSON")
    .action((keyText: string, flags: SchemeChoice & { json?: boolean }) =>
      run(async () => {
        const key = EncryptionKey.parse(await resolveKeyReference(keyText, "key"), "key");
        const id = idUnder(key, flags);
        writeStdout(flags.json ? JSON.stringify({ id }) : id);
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
