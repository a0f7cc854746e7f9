import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import type { BatchFilter, BatchRow, Dialect, RowWrite } from "../src/db/dialect.js";
import type { EncryptedTable } from "../src/schema/model.js";
import type { openSession as OpenSession, loadSchema as LoadSchema } from "../src/ops/session.js";

/**
 * The protocol limit (issue 12): the same batches dbcrypt reads and writes, through the same
 * dialect code and statements of the CLI under test, with no crypto. It uses the CLI snapshot's
 * own compiled modules (not the bench's copy of src/), so it measures exactly the statements the
 * measured rotate sends. Values are written back changed (shifted by one character) under another
 * key id, so the server does what a rotate makes it do: every row gets new bytes, and its key-id
 * foreign key is checked. A second pass shifts them back under the original key id, restoring
 * every row exactly; both passes are timed.
 */
export interface ProtocolPass {
  rows: number;
  ms: number;
}

interface SessionModule {
  openSession: typeof OpenSession;
  loadSchema: typeof LoadSchema;
}

export class ProtocolWalker {
  readonly #dialect: Dialect;
  readonly #table: EncryptedTable;

  private constructor(dialect: Dialect, table: EncryptedTable) {
    this.#dialect = dialect;
    this.#table = table;
  }

  /** Opens `database` with the CLI snapshot's session code and finds `tableName` in its schema plan. */
  static async open(cliPath: string, database: string, tableName: string): Promise<ProtocolWalker> {
    const sessionUrl = pathToFileURL(join(dirname(cliPath), "..", "dist", "ops", "session.js")).href;
    const { openSession, loadSchema } = (await import(sessionUrl)) as SessionModule;
    const session = await openSession({ database, configPath: undefined, keysTable: undefined, command: "bench-protocol-limit", readOnly: false });
    try {
      const plan = await loadSchema(session);
      const table = plan.tables.find((candidate) => candidate.ref.name === tableName);
      if (table === undefined) throw new Error(`protocol limit: dbcrypt's schema plan has no table ${tableName}`);
      return new ProtocolWalker(session.dialect, table);
    } catch (error) {
      await session.dialect.close();
      throw error;
    }
  }

  /**
   * One pass over every row not under `fromOtherThan`, pipelined as dbcrypt's walk is: the next
   * batch is read while the current one is written. Each value is rewritten by `change` under `keyId`.
   */
  async pass(notUnderKeyId: string, keyId: string, batchSize: number, change: (value: string) => string): Promise<ProtocolPass> {
    const filter: BatchFilter = { kind: "not-under-key", keyId: notUnderKeyId };
    const started = performance.now();
    let rows = 0;
    let reading = this.#dialect.readBatch(this.#table, filter, undefined, batchSize);
    for (;;) {
      const batch = await reading;
      if (batch.length === 0) break;
      const last = batch[batch.length - 1] as BatchRow;
      reading = batch.length < batchSize ? Promise.resolve([]) : this.#dialect.readBatch(this.#table, filter, last.rowKey, batchSize);
      // If the write below fails, the read in flight is abandoned: its rejection must not crash the bench.
      reading.catch(() => undefined);
      const writes: RowWrite[] = batch.map((row) => ({
        rowKey: row.rowKey,
        version: row.version,
        expected: row.fields,
        next: row.fields.map((field) => ({ value: field.value === null ? null : change(field.value), keyId })),
      }));
      const outcome = await this.#dialect.writeBatch(this.#table, writes);
      if (outcome.conflicts.length > 0) throw new Error(`protocol limit: ${outcome.conflicts.length} row(s) changed underneath`);
      rows += outcome.written;
    }
    return { rows, ms: performance.now() - started };
  }

  close(): Promise<void> {
    return this.#dialect.close();
  }
}

/** The change of the first pass and the one that undoes it. */
export const shiftLeft = (value: string): string => (value.length < 2 ? value : value.slice(1) + value[0]);
export const shiftRight = (value: string): string => (value.length < 2 ? value : value[value.length - 1] + value.slice(0, -1));
