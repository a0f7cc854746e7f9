/**
 * Figures from chaos runs: printed (so CI logs carry them) and, when DBCRYPT_CHAOS_REPORT names a
 * file, appended to it as JSON Lines for docs/reliability.md.
 */
import { appendFileSync } from "node:fs";
import { chaos } from "./settings.js";

export function recordFigures(test: string, figures: Record<string, unknown>): void {
  const line = { test, mode: chaos.mode, seed: chaos.seed, finishedAt: new Date().toISOString(), ...figures };
  console.log(`[chaos] ${JSON.stringify(line)}`);
  if (chaos.report !== undefined) appendFileSync(chaos.report, `${JSON.stringify(line)}\n`);
}

/** Counts by label, for "where did the kills land" tables. */
export function tally(labels: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const label of labels) counts[label] = (counts[label] ?? 0) + 1;
  return counts;
}
