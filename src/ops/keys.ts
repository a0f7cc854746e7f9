import { DbcryptError } from "../errors.js";
import type { KeyRow } from "../db/dialect.js";
import { takeCensus, usageByKeyId } from "./census.js";
import { KeysTableWriter } from "./keys-writer.js";
import { loadSchema, requireKeysTable, withWritePreparation, type ReadSession, type Session } from "./session.js";

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
  dryRun: boolean;
  confirm: (summary: string) => Promise<void>;
}

export type RevokeOutcome = "revoked" | "already-revoked" | "dry-run";

/**
 * Revokes one key, refusing while any value uses it and naming where. The foreign keys would
 * refuse too, but only for columns that have them, and with a less useful message.
 */
export async function revokeKey(session: Session, request: RevokeRequest): Promise<RevokeOutcome> {
  const { dialect } = session;
  return withWritePreparation(session, "keys revoke", request.dryRun, async ({ schema, keys }) => {
    const row = keys.find((candidate) => candidate.activeKeyDigest === request.keyId || candidate.revokedKeyDigest === request.keyId);
    if (row === undefined) {
      throw new DbcryptError("usage", `there is no key ${request.keyId} in ${dialect.keysTable}`, { hint: "`dbcrypt keys list` shows the key ids" });
    }
    if (row.activeKeyDigest === null) return "already-revoked";
    const uses = usageByKeyId(await takeCensus(dialect, schema)).get(request.keyId) ?? [];
    if (uses.length > 0) {
      throw new DbcryptError("key_in_use", `key ${request.keyId} is still used by ${uses.reduce((sum, use) => sum + use.rows, 0)} value(s)`, {
        hint: "rotate or decrypt those values first",
        details: uses.map((use) => `${use.label}: ${use.rows} value(s)`),
        subject: { keyId: request.keyId, columns: uses.map((use) => use.label) },
      });
    }
    if (request.dryRun) return "dry-run";
    await request.confirm(`Revoke key ${request.keyId}? A revoked key can never be made active again.`);
    return (await new KeysTableWriter(dialect).revokeKey(request.keyId)) === "revoked" ? "revoked" : "already-revoked";
  });
}

export async function initKeysTable(session: Session): Promise<"created" | "exists"> {
  if (await session.dialect.keysTableExists()) return "exists";
  await new KeysTableWriter(session.dialect).createKeysTable();
  return "created";
}
