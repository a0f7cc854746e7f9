import { UNIDENTIFIED_KEY_ID } from "../crypto/keyring.js";
import { DbcryptError } from "../errors.js";
import type { DatabaseReader, KeyRow } from "../db/dialect.js";
import { takeCensus, usageByKeyId } from "./census.js";
import { KeysTableWriter } from "./keys-writer.js";
import { loadSchema, requireKeysTable, withDryRunPreparation, withWritePreparation, type ReadSession, type Session, type WritePreparation } from "./session.js";

export interface KeyListing {
  keysTable: string;
  keys: (Omit<KeyRow, "test"> & { state: "active" | "revoked"; values: number })[];
}

export async function listKeys(session: ReadSession): Promise<KeyListing> {
  const { dialect } = session;
  await requireKeysTable(dialect);
  const schema = await loadSchema(session);
  const usage = usageByKeyId(await takeCensus(dialect, schema));
  const keys = await dialect.readKeys();
  return {
    keysTable: dialect.keysTable,
    keys: keys.map(({ test: _canary, ...row }) => {
      const keyId = row.activeKeyDigest ?? row.revokedKeyDigest ?? "";
      return { ...row, state: row.activeKeyDigest === null ? "revoked" : "active", values: (usage.get(keyId) ?? []).reduce((sum, use) => sum + use.rows, 0) };
    }),
  };
}

export interface RevokeRequest {
  keyId: string;
  confirm: (summary: string) => Promise<void>;
}

export type RevokeOutcome = "revoked" | "already-revoked" | "dry-run";

/**
 * Revokes one key, refusing while any value uses it and naming where. The foreign keys would
 * refuse too, but only for columns that have them, and with a less useful message.
 */
export async function revokeKey(session: Session, request: RevokeRequest): Promise<RevokeOutcome> {
  return withWritePreparation(session, "keys revoke", async (prepared) => {
    if ((await checkRevocable(session.dialect, prepared, request.keyId)) === "already-revoked") return "already-revoked";
    await request.confirm(`Revoke key ${request.keyId}? A revoked key can never be made active again.`);
    return (await new KeysTableWriter(session.dialect).revokeKey(request.keyId)) === "revoked" ? "revoked" : "already-revoked";
  });
}

/** `keys revoke --dry-run`: the same checks, on a session that cannot write. */
export async function checkRevokeKey(session: ReadSession, keyId: string): Promise<RevokeOutcome> {
  return withDryRunPreparation(session, async (prepared) => ((await checkRevocable(session.dialect, prepared, keyId)) === "already-revoked" ? "already-revoked" : "dry-run"));
}

async function checkRevocable(dialect: DatabaseReader, { schema, keys }: WritePreparation, keyId: string): Promise<"revocable" | "already-revoked"> {
  const row = keys.find((candidate) => candidate.activeKeyDigest === keyId || candidate.revokedKeyDigest === keyId);
  if (row === undefined) {
    throw new DbcryptError("usage", `there is no key ${keyId} in ${dialect.keysTable}`, { hint: "`dbcrypt keys list` shows the key ids", subject: { keyId } });
  }
  if (row.activeKeyDigest === null) return "already-revoked";
  const usage = usageByKeyId(await takeCensus(dialect, schema));
  // Where no key id is stored and no key was given to tell, any encrypted value may be under it.
  const uses = [...(usage.get(keyId) ?? []), ...(usage.get(UNIDENTIFIED_KEY_ID) ?? [])];
  if (uses.length > 0) {
    throw new DbcryptError("key_in_use", `key ${keyId} is still used by ${uses.reduce((sum, use) => sum + use.rows, 0)} value(s)`, {
      hint: usage.has(UNIDENTIFIED_KEY_ID)
        ? `this scheme stores no key ids, so without the keys every encrypted value may be under ${keyId}; rotate or decrypt revoke the keys they move away from`
        : "rotate or decrypt those values first",
      details: uses.map((use) => `${use.label}: ${use.rows} value(s)`),
      subject: { keyId, columns: uses.map((use) => use.label) },
    });
  }
  return "revocable";
}

export async function initKeysTable(session: Session): Promise<"created" | "exists"> {
  if (await session.dialect.keysTableExists()) return "exists";
  await new KeysTableWriter(session.dialect).createKeysTable();
  return "created";
}
