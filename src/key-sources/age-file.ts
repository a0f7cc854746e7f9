import { DbcryptError } from "../errors.js";

/**
 * age files (age-encryption.org/v1) encrypted to a passphrase: the scrypt recipient, which must be
 * the file's only recipient. The format is the age CLI's, so a backup made by `dbcrypt keys export`
 * opens with `age -d` and one made by `age -p` opens here; the cryptography is the age-encryption
 * package's (the reference implementation's TypeScript port), not dbcrypt's own. It is imported
 * when an age file is met, so commands that never touch one do not pay its start-up time.
 */
const ARMOR_HEADER = "-----BEGIN AGE ENCRYPTED FILE-----";
const BINARY_HEADER = "age-encryption.org/v1\n";
/** age's own default work factor for new files (scrypt N = 2^18). */
export const DEFAULT_SCRYPT_WORK_FACTOR = 18;

export function isArmored(bytes: Uint8Array): boolean {
  return Buffer.from(bytes.subarray(0, 64)).toString("latin1").trimStart().startsWith(ARMOR_HEADER);
}

/** The plaintext of an age file, as text. `shown` names the file in errors; neither passphrase nor contents ever appear in one. */
export async function decryptAgeFile(bytes: Uint8Array, passphrase: string, shown: string): Promise<string> {
  const { armor, Decrypter } = await import("age-encryption");
  let binary: Uint8Array;
  try {
    binary = isArmored(bytes) ? armor.decode(Buffer.from(bytes).toString("latin1")) : bytes;
  } catch {
    throw new DbcryptError("bad_key", `${shown} has an age armor header but its body is not valid`, { hint: "check that the file was not cut or re-wrapped" });
  }
  if (!Buffer.from(binary.subarray(0, BINARY_HEADER.length)).toString("latin1").startsWith(BINARY_HEADER)) {
    throw new DbcryptError("bad_key", `${shown} is not an age file`, { hint: "age:PATH takes a file made by `dbcrypt keys export` or `age -p`" });
  }
  const decrypter = new Decrypter();
  decrypter.addPassphrase(passphrase);
  try {
    return await decrypter.decrypt(binary, "text");
  } catch (error) {
    throw new DbcryptError("bad_key", `${shown}: ${describeAgeFailure((error as Error).message)}`, { hint: "check the passphrase (--passphrase-file, --passphrase-env or the prompt)" });
  }
}

/**
 * The library's messages describe the file's structure (never the passphrase or contents); the
 * common ones get words an operator can act on.
 */
function describeAgeFailure(message: string): string {
  if (/no identity matched/i.test(message)) return "the passphrase does not open it, or it was encrypted to a recipient key rather than a passphrase";
  if (/not the only one/i.test(message)) return "it has a passphrase stanza beside other recipients, which age does not allow";
  if (/work factor is too high/i.test(message)) return "its scrypt work factor is above 20, more than dbcrypt will compute";
  return `cannot decrypt it: ${message.split("\n")[0]}`;
}

export async function encryptAgeFile(text: string, passphrase: string, options: { workFactor: number; armored: boolean }): Promise<Uint8Array> {
  const { armor, Encrypter } = await import("age-encryption");
  const encrypter = new Encrypter();
  encrypter.setPassphrase(passphrase);
  encrypter.setScryptWorkFactor(options.workFactor);
  const binary = await encrypter.encrypt(text);
  return options.armored ? Buffer.from(armor.encode(binary), "latin1") : binary;
}
