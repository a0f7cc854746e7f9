#!/usr/bin/env node
// The README's first command: status, rotate to a fresh key, status again, on a copy of the
// bundled SQLite demo database. Keys are passed as files (@PATH) and shown by key id only.
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const workDir = join(root, ".dbcrypt-demo");
const cli = join(root, "bin", "dbcrypt.js");
rmSync(workDir, { recursive: true, force: true });
mkdirSync(workDir, { mode: 0o700 });
const database = join(workDir, "demo.db");
copyFileSync(join(root, "fixtures", "demo.db"), database);
// A checkout leaves fixtures/demo.key readable by everyone, and dbcrypt refuses such key files;
// the copy is the operator's own.
const oldKeyFile = join(workDir, "demo.key");
copyFileSync(join(root, "fixtures", "demo.key"), oldKeyFile);
chmodSync(oldKeyFile, 0o600);
const newKeyFile = join(workDir, "new.key");

const generated = JSON.parse(execFileSync(process.execPath, [cli, "keys", "generate", "--json"], { encoding: "utf8" }));
writeFileSync(newKeyFile, `${generated.key}\n`, { mode: 0o600 });
const oldKeyId = execFileSync(process.execPath, [cli, "keys", "id", `@${oldKeyFile}`], { encoding: "utf8" }).trim();

const step = (title, args) => {
  process.stdout.write(`\n=== ${title}\n$ dbcrypt ${args.join(" ")}\n`);
  const result = spawnSync(process.execPath, [cli, ...args], { stdio: "inherit" });
  process.stdout.write(`(exit ${result.status})\n`);
  return result.status ?? 1;
};

process.stdout.write(`demo database: ${database}\nold key: ${oldKeyId} (fixtures/demo.key, copied to ${oldKeyFile})   new key: ${generated.id} (${newKeyFile})\n`);
step("census before", ["status", "--db", database]);
const rotated = step("rotate to the new key", ["rotate", "--db", database, "--new-key", `@${newKeyFile}`, "--old-keys", `@${oldKeyFile}`, "--yes"]);
const gate = step("CI gate: is everything under the new key?", ["status", "--db", database, "--keys", `@${newKeyFile}`, "--verify", "--require-key", generated.id, "--require-encrypted"]);
process.exitCode = rotated === 0 && gate === 0 ? 0 : 1;
