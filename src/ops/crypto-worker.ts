import { parentPort, workerData } from "node:worker_threads";
import type { EncryptedTable } from "../schema/model.js";
import { packPlans, transferablesOf, unpackRows, type PackedRows } from "./packed-batch.js";
import { buildRowPlanner, type RowTransformSpec } from "./row-transform.js";

/**
 * A crypto worker: decrypts and re-encrypts batches handed to it by the runner, so the cipher, the
 * one wall on SQLite, runs on more than one core. It sees rows and keys, never the database.
 */
export interface PlanRequest {
  id: number;
  table: EncryptedTable;
  rows: PackedRows;
}

const planRow = buildRowPlanner(workerData as RowTransformSpec);

parentPort?.on("message", (request: PlanRequest) => {
  try {
    const plans = packPlans(unpackRows(request.rows).map((row) => planRow(row, request.table)), request.table.columns.length);
    parentPort?.postMessage({ id: request.id, plans }, transferablesOf(plans.written));
  } catch (error) {
    parentPort?.postMessage({ id: request.id, error: error instanceof Error ? error.message : String(error) });
  }
});
