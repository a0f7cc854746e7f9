/**
 * Independent oracles for the schemes without key ids, for seeding and checking test databases.
 * AtelyaOS cells are made and opened with tweetnacl (a secretbox implementation dbcrypt does not
 * use) and node's HMAC; Company Agents' dotted layout with node:crypto. Never imports from src/.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from "node:crypto";
import nacl from "tweetnacl";

export type Spelling = "base64" | "base64url-unpadded" | "hex";

function spell(bytes: Buffer, spelling: Spelling): string {
  if (spelling === "hex") return bytes.toString("hex");
  if (spelling === "base64url-unpadded") return bytes.toString("base64url");
  return bytes.toString("base64");
}

function unspell(text: string): Buffer[] {
  const readings = [Buffer.from(text, "base64"), Buffer.from(text, "base64url")];
  if (/^[0-9a-f]+$/.test(text) && text.length % 2 === 0) readings.unshift(Buffer.from(text, "hex"));
  return readings;
}

/** AtelyaOS as the seed describes it: key = HMAC-SHA256(master, workspace id as UTF-8). */
export function workspaceKey(master: Buffer, workspaceId: string): Buffer {
  return createHmac("sha256", master).update(workspaceId, "utf8").digest();
}

export function sealSecretbox(master: Buffer, workspaceId: string, plaintext: string, spelling: Spelling = "base64"): string {
  const nonce = randomBytes(nacl.secretbox.nonceLength);
  const box = nacl.secretbox(Buffer.from(plaintext, "utf8"), nonce, workspaceKey(master, workspaceId));
  return spell(Buffer.concat([nonce, Buffer.from(box)]), spelling);
}

/** The plaintext, or undefined when the cell does not open under this master key and workspace. */
export function openSecretbox(master: Buffer, workspaceId: string, cell: string): string | undefined {
  for (const bytes of unspell(cell)) {
    if (bytes.length < nacl.secretbox.nonceLength + nacl.secretbox.overheadLength) continue;
    const opened = nacl.secretbox.open(bytes.subarray(nacl.secretbox.nonceLength), bytes.subarray(0, nacl.secretbox.nonceLength), workspaceKey(master, workspaceId));
    if (opened !== null) return Buffer.from(opened).toString("utf8");
  }
  return undefined;
}

/** Company Agents / flat Authsome dotted layout: b64(nonce) "." b64(ciphertext ‖ tag). */
export function sealDotted(key: Buffer, plaintext: string): string {
  const nonce = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, nonce);
  const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final(), cipher.getAuthTag()]);
  return `${nonce.toString("base64")}.${body.toString("base64")}`;
}

export function openDotted(key: Buffer, cell: string): string | undefined {
  const [nonceText, bodyText] = cell.split(".");
  if (nonceText === undefined || bodyText === undefined) return undefined;
  const body = Buffer.from(bodyText, "base64");
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(nonceText, "base64"));
    decipher.setAuthTag(body.subarray(body.length - 16));
    return Buffer.concat([decipher.update(body.subarray(0, body.length - 16)), decipher.final()]).toString("utf8");
  } catch {
    return undefined;
  }
}
