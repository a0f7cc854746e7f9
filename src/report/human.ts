import type { KeyListing } from "../ops/keys.js";
import type { OperationPlan, OperationResult } from "../ops/operation.js";
import type { StatusReport } from "../ops/status.js";

/** Plain-text renderings of results. Key ids, labels and counts only. */
export function formatPlan(plan: OperationPlan): string {
  const lines = [`${plan.command} on ${plan.target} (preset: ${plan.preset})`];
  if (plan.partition !== undefined) lines.push(`  partition ${plan.partition}: this run rewrites its part of every table; the counts are the whole database's`);
  if (plan.lines.length === 0) lines.push("  no values to change");
  const width = Math.max(0, ...plan.lines.map((line) => line.column.length));
  for (const line of plan.lines) lines.push(`  ${line.column.padEnd(width)}  ${line.from} -> ${line.to}: ${line.rows} value(s)`);
  for (const action of plan.keyActions) lines.push(`  ${action}`);
  for (const line of plan.keySources) lines.push(`  ${keySourceText(line)}`);
  lines.push(`  total: ${plan.totalRows} value(s)`);
  for (const warning of plan.warnings) lines.push(`  warning: ${warning}`);
  return lines.join("\n");
}

function keySourceText(line: { keyId: string; source: string; writes: boolean }): string {
  return `key ${line.keyId}${line.writes ? " (writes)" : ""} from ${line.source}`;
}

export function formatResult(result: OperationResult): string {
  const lines: string[] = [];
  const headline: Record<OperationResult["status"], string> = {
    "done": `${result.command}: done`,
    "nothing-to-do": `${result.command}: nothing to do`,
    "dry-run": `${result.command}: dry run, nothing written`,
    "stopped": `${result.command}: stopped by ${result.stopReason === "deadline" ? "--max-duration" : "a signal"} before finishing; re-run to continue`,
    "incomplete": `${result.command}: rows kept changing underneath; re-run to finish them`,
    "failed-rows": `${result.command}: finished, but some rows could not be decrypted and were left unchanged`,
  };
  lines.push(headline[result.status]);
  if (result.status === "dry-run") lines.push(formatPlan(result.plan));
  for (const table of result.tables) {
    const extra = [table.conflicts ? `${table.conflicts} changed underneath` : "", table.undecryptable ? `${table.undecryptable} undecryptable` : ""].filter(Boolean).join(", ");
    lines.push(`  ${table.table}: ${table.written} row(s), ${table.valuesWritten} value(s)${extra ? ` (${extra})` : ""}`);
  }
  for (const failure of result.undecryptable.slice(0, 50)) {
    lines.push(`  undecryptable: ${failure.table}.${failure.failure.column} row ${JSON.stringify(failure.rowKey)} key ${failure.failure.keyId ?? "-"}: ${failure.failure.reason}`);
  }
  if (result.undecryptable.length > 50) lines.push(`  … and ${result.undecryptable.length - 50} more (see --json)`);
  for (const keyId of result.keysInserted) lines.push(`  inserted key ${keyId}`);
  for (const keyId of result.keysRevoked) lines.push(`  revoked key ${keyId}`);
  for (const kept of result.keysKept) lines.push(`  kept key ${kept.keyId}: ${kept.reason}`);
  if (result.status !== "dry-run") lines.push(`  ${result.rowsWritten} row(s), ${result.valuesWritten} value(s) in ${(result.elapsedMs / 1000).toFixed(1)}s`);
  if (result.continueWith) lines.push(`  to continue: ${result.continueWith}`);
  if (result.continueWith && result.continueNote) lines.push(`  (${result.continueNote})`);
  return lines.join("\n");
}

export function formatStatus(report: StatusReport): string {
  const lines = [`database: ${report.target}`, `preset: ${report.preset}`];
  if (!report.keysTable.exists) lines.push(`keys table ${report.keysTable.name}: missing`);
  else {
    lines.push(`keys (${report.keysTable.name}):`);
    if (report.keys.length === 0) lines.push("  (none)");
    for (const key of report.keys) {
      const state = key.activeKeyDigest !== null ? `active   ${key.activeKeyDigest}` : `revoked  ${key.revokedKeyDigest}`;
      lines.push(`  #${key.number} ${state}  values: ${key.values}  created ${key.createdAt ?? "-"}${key.revokedAt ? `  revoked ${key.revokedAt}` : ""}`);
    }
  }
  if (report.keySources.length > 0) {
    lines.push("supplied keys:");
    for (const line of report.keySources) lines.push(`  ${keySourceText(line)}`);
  }
  lines.push("encrypted columns:");
  if (report.columns.length === 0) lines.push("  (none found)");
  for (const column of report.columns) {
    const encrypted = Object.entries(column.encrypted).map(([keyId, rows]) => `${keyId}: ${rows}`).join(", ") || "none";
    const plaintext = column.plaintext;
    lines.push(`  ${column.column} [${column.source}]  encrypted: ${encrypted}  plaintext: ${plaintext.toEncrypt} to encrypt, ${plaintext.keptPlaintext} blank kept, ${plaintext.nulls} null`);
  }
  for (const table of report.refusedTables) lines.push(`refused: ${table.table} (${table.columns.join(", ")}): ${table.reason}`);
  for (const warning of report.warnings) lines.push(`warning: ${warning.message}`);
  if (report.verified) lines.push(`verified: ${report.verified.values} value(s) decrypted, ${report.verified.undecryptable.length} failed`);
  if (report.problems.length === 0) lines.push("problems: none");
  else {
    lines.push(`problems (${report.problems.length}):`);
    for (const problem of report.problems) lines.push(`  - ${problem}`);
  }
  return lines.join("\n");
}

export function formatKeyListing(listing: KeyListing): string {
  const lines = [`keys in ${listing.keysTable}:`];
  if (listing.keys.length === 0) lines.push("  (none)");
  for (const key of listing.keys) {
    const id = key.activeKeyDigest ?? key.revokedKeyDigest;
    lines.push(`  #${key.number} ${key.state.padEnd(7)} ${id}  values: ${key.values}  created ${key.createdAt ?? "-"}${key.revokedAt ? `  revoked ${key.revokedAt}` : ""}`);
  }
  return lines.join("\n");
}
