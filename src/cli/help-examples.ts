import type { Command } from "commander";

/**
 * Two or three real invocations per command, shown at the end of its --help (as docs/cli.md
 * does). Keys are given as @FILE throughout, the form the docs recommend. Keyed by the command's
 * path below the program ("" for dbcrypt itself).
 */
const EXAMPLES: Record<string, string[]> = {
  "": [
    "dbcrypt status --db app.db",
    "dbcrypt rotate --db app.db --new-key @new.key --old-keys @old.key --dry-run",
    "dbcrypt rotate --db app.db --new-key @new.key --old-keys @old.key --yes",
  ],
  status: [
    "dbcrypt status --db app.db",
    "dbcrypt status --db \"$DATABASE_URL\" --keys @keys.txt --verify",
    "dbcrypt status --db \"$DATABASE_URL\" --preset obot --encryption-config current.yaml --verify",
  ],
  rotate: [
    "dbcrypt rotate --db app.db --new-key @new.key --old-keys @old.key --dry-run",
    "dbcrypt rotate --db \"$DATABASE_URL\" --new-key 'exec:vault kv get -field=key secret/dbcrypt' --old-keys age:old-key.age --yes --max-duration 45m",
    "dbcrypt rotate --db \"$DATABASE_URL\" --preset obot --encryption-config current.yaml --new-encryption-config new.yaml --yes",
  ],
  decrypt: [
    "dbcrypt decrypt --db app.db --keys @old.key --dry-run",
    "dbcrypt decrypt --db app.db --keys @old.key --yes",
  ],
  delete: [
    "dbcrypt delete --db app.db --dry-run",
    "dbcrypt delete --db \"$DATABASE_URL\" --yes --json",
  ],
  keys: [
    "dbcrypt keys generate > new.key",
    "dbcrypt keys list --db app.db",
  ],
  "keys generate": [
    "dbcrypt keys generate > new.key",
    "dbcrypt keys generate --json",
  ],
  "keys id": [
    "dbcrypt keys id @new.key",
    "dbcrypt keys id --preset atelyaos @master.key",
    "dbcrypt keys id 'exec:vault kv get -field=key secret/dbcrypt'",
  ],
  "keys export": [
    "dbcrypt keys export @new.key --out new-key.age",
    "dbcrypt keys export env://DBCRYPT_NEW_KEY --out new-key.age --passphrase-file /run/secrets/backup-passphrase --armor",
  ],
  "keys list": [
    "dbcrypt keys list --db app.db",
    "dbcrypt keys list --db \"$DATABASE_URL\" --json",
  ],
  "keys revoke": [
    "dbcrypt keys revoke 116e9a9 --db app.db --dry-run",
    "dbcrypt keys revoke 116e9a9 --db app.db --yes",
  ],
  "keys init": [
    "dbcrypt keys init --db app.db",
    "dbcrypt keys init --db \"$DATABASE_URL\" --keys-table app_keys",
  ],
};

export function commandPath(command: Command): string {
  const names: string[] = [];
  for (let current: Command | null = command; current?.parent; current = current.parent) names.unshift(current.name());
  return names.join(" ");
}

export function addHelpExamples(command: Command): void {
  const examples = EXAMPLES[commandPath(command)];
  if (examples === undefined) return;
  command.addHelpText("after", `\nExamples:\n${examples.map((example) => `  $ ${example}`).join("\n")}\n`);
}
