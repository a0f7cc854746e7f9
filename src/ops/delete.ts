import type { KeyRow } from "../db/dialect.js";
import { Keyring } from "../crypto/keyring.js";
import { takeCensus, type Census } from "./census.js";
import type { OperationPlan, PlanLine, WriteRequest } from "./operation.js";
import { writeOperation } from "./write-operation.js";
import { DbcryptError } from "../errors.js";
import type { SchemaPlan } from "../schema/model.js";
import { tableLabel } from "../schema/model.js";

/**
 * Disaster recovery when a key is lost: applies each table's delete policy (delete the row, or
 * clear the value and its key id) to every row holding an encrypted value, then revokes every
 * active key. Needs no keys. Plaintext rows are never touched.
 */
export const deleteOperation = writeOperation<WriteRequest>("delete", async (dialect, { schema, keys }) => {
  refuseClearWithoutKeyIdColumn(schema);
  const census = await takeCensus(dialect, schema);
  const plan = deletePlan(dialect.target, schema, census, keys);
  return {
    plan,
    schema,
    census,
    keyring: Keyring.empty(),
    filter: { kind: "encrypted" },
    action: { kind: "delete" },
    revokeCandidates: keys.flatMap((row) => (row.activeKeyDigest === null ? [] : [row.activeKeyDigest])),
    beforeWrites: async () => [],
    continueWith: "dbcrypt delete",
  };
});

function deletePlan(target: string, schema: SchemaPlan, census: Census, keys: KeyRow[]): OperationPlan {
  const lines: PlanLine[] = [];
  for (const column of census.columns) {
    const policy = column.table.deletePolicy.action === "delete-row" ? `row deleted (${tableLabel(column.table.ref)})` : `cleared to ${JSON.stringify(column.column.clearTo)}`;
    for (const [keyId, rows] of column.encryptedByKeyId) lines.push({ column: column.label, from: keyId, to: policy, rows });
  }
  const keyActions = keys.flatMap((row) => (row.activeKeyDigest === null ? [] : [`revoke key ${row.activeKeyDigest}`]));
  const totalRows = lines.reduce((sum, line) => sum + line.rows, 0);
  return { command: "delete", target, preset: schema.preset, lines, keyActions, totalRows, nothingToDo: totalRows === 0 && keyActions.length === 0, warnings: [], keySources: [] };
}

/**
 * Clearing a value is decided per column in SQL by its key id; where the scheme keeps the key id
 * inside the value, the database cannot tell which values to clear, so only delete-row is offered.
 */
function refuseClearWithoutKeyIdColumn(schema: SchemaPlan): void {
  const tables = schema.tables.filter((table) => table.deletePolicy.action === "clear" && table.columns.some((column) => column.keyIdColumn === undefined));
  if (tables.length === 0) return;
  throw new DbcryptError("bad_config", `delete cannot clear values whose key id is inside the value (scheme "${schema.scheme.name}"): ${tables.map((table) => tableLabel(table.ref)).join(", ")}`, {
    hint: 'set "deletePolicy": "delete-row" for these tables in the config file',
    subject: { tables: tables.map((table) => tableLabel(table.ref)) },
  });
}
