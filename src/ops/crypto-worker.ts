import { parentPort, workerData } from "node:worker_threads";
import type { BatchRow } from "../db/dialect.js";
import type { EncryptedTable } from "../schema/model.js";
import { buildRowPlanner, type RowTransformSpec } from "./row-transform.js";

/**
 * A crypto worker: decrypts and re-encrypts batches handed to it by the runner, so the cipher, the
 * one wall on SQLite, runs on more than one core. It sees rows and keys, never the database.
 */
export interface PlanRequest {
  id: number;
  table: EncryptedTable;
  rows: BatchRow[];
}

const planRow = buildRowPlanner(workerData as RowTransformSpec);

parentPort?.on("message", (request: PlanRequest) => {
  try {
    const plans = request.rows.map((row) => planRow(row, request.table));
    parentPort?.postMessage({ id: request.id, plans });
  } catch (error) {
    parentPort?.postMessage({ id: request.id, error: error instanceof Error ? error.message : String(error) });
  }
});
