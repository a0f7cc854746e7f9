import { chmodSync, existsSync, linkSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { EncryptionKey } from "../crypto/encryption-key.js";
import { DbcryptError } from "../errors.js";
import { decryptAgeFile, encryptAgeFile } from "../key-sources/age-file.js";

/**
 * `dbcrypt keys export`: the key sealed in an age file to a passphrase (Company Agents' "backup
 * with a passphrase-wrapped master key"). The file is written beside its final name and renamed,
 * so a crash never leaves half a backup under that name, and it is opened again before the
 * rename: a backup that was never restored is not known to be one.
 */
export async function exportKeyBackup(key: EncryptionKey, passphrase: string, options: { path: string; armored: boolean; workFactor: number; replace: boolean }): Promise<void> {
  if (!options.replace && existsSync(options.path)) {
    throw new DbcryptError("usage", `${options.path} already exists; nothing was written`, { hint: "choose another --out, or pass --force to replace it" });
  }
  const sealed = await encryptAgeFile(`${key.exportBase64()}\n`, passphrase, { workFactor: options.workFactor, armored: options.armored });
  const reopened = EncryptionKey.parse((await decryptAgeFile(sealed, passphrase, "the new backup")).trim(), "the new backup");
  if (reopened.id !== key.id) throw new DbcryptError("internal", "the new backup did not open to the same key; nothing was written");
  const staging = `${options.path}.dbcrypt-${process.pid}.tmp`;
  try {
    writeFileSync(staging, sealed, { mode: 0o600, flag: "wx" });
    chmodSync(staging, 0o600);
    // Without --force, a link cannot replace a file that appeared since the check above.
    if (options.replace) renameSync(staging, options.path);
    else linkSync(staging, options.path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EEXIST") throw new DbcryptError("usage", `${options.path} already exists; nothing was written`, { hint: "choose another --out, or pass --force to replace it" });
    throw new DbcryptError("usage", `cannot write ${options.path}: ${code ?? "write error"}`, { hint: "check the directory exists and is writable" });
  } finally {
    rmSync(staging, { force: true });
  }
}
