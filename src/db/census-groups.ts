import type { CensusGroup } from "./dialect.js";

/**
 * Both dialects take the census in two steps, a bare grouped count and (only when it found
 * plaintext) a breakdown of the plaintext rows; this joins the two into CensusGroups, folding the
 * '' key id into NULL as Coder does.
 */
export interface KeyCount {
  keyId: string | null;
  rows: number;
}

export interface PlaintextBreakdown {
  rows: number;
  nulls: number;
  empties: number;
  blanks: number;
  emptyObjects: number;
}

export function hasPlaintext(counts: KeyCount[]): boolean {
  return counts.some((count) => (count.keyId === null || count.keyId === "") && count.rows > 0);
}

export function toCensusGroups(counts: KeyCount[], plaintext: PlaintextBreakdown | undefined): CensusGroup[] {
  const groups: CensusGroup[] = counts
    .filter((count) => count.keyId !== null && count.keyId !== "")
    .map((count) => ({ keyId: count.keyId, rows: count.rows, nulls: 0, empties: 0, blanks: 0, emptyObjects: 0 }));
  if (plaintext !== undefined && plaintext.rows > 0) groups.push({ keyId: null, ...plaintext });
  return groups;
}
