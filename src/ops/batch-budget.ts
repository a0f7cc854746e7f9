import type { BatchRow } from "../db/dialect.js";

/** Rows asked for in a table's first batch, before anything is known about the size of its values. */
const FIRST_BATCH_ROWS = 16;

/**
 * How many rows the next batch may have, so a batch holds about `budgetBytes` of values however
 * large they are (4 KiB audit bodies, 256 KiB HTTP captures): memory is bounded by bytes, and
 * --batch-size only caps the row count. Rows seen so far set the estimate; it rises at once when
 * values grow and falls slowly, so a run of large values after small ones overshoots one batch at
 * most.
 */
export class BatchByteBudget {
  readonly budgetBytes: number;
  #bytesPerRow: number | undefined;

  constructor(budgetBytes: number) {
    this.budgetBytes = budgetBytes;
  }

  rowsFor(maxRows: number): number {
    if (this.#bytesPerRow === undefined) return Math.min(maxRows, FIRST_BATCH_ROWS);
    return Math.max(1, Math.min(maxRows, Math.floor(this.budgetBytes / this.#bytesPerRow)));
  }

  observe(rows: readonly BatchRow[]): void {
    if (rows.length === 0) return;
    let bytes = 0;
    for (const row of rows) for (const field of row.fields) bytes += field.value?.length ?? 0;
    const observed = Math.max(1, bytes / rows.length);
    this.#bytesPerRow = this.#bytesPerRow === undefined ? observed : Math.max(observed, 0.7 * this.#bytesPerRow + 0.3 * observed);
  }
}

/**
 * 1 MiB: a batch of 1,000 typical secrets (a few hundred bytes each) stays under it, so only large
 * values shrink batches; at 4 MiB, runs of 4 KiB and 256 KiB values peaked 40-70 MB higher for no
 * gain in MB/s (docs/performance.md).
 */
export const DEFAULT_BATCH_BYTES = 1024 * 1024;
