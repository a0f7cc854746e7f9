import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import type { BatchRow } from "../db/dialect.js";
import { DbcryptError } from "../errors.js";
import type { EncryptedTable } from "../schema/model.js";
import type { ValueScheme } from "../crypto/schemes/value-scheme.js";
import type { PlanRequest } from "./crypto-worker.js";
import { packRows, transferablesOf, unpackPlans, type PackedPlans } from "./packed-batch.js";
import { buildRowPlanner, type RowTransformSpec } from "./row-transform.js";
import type { RowPlan } from "./row-plans.js";

/**
 * Computes the row plans (the crypto) of a batch, either on the main thread or on a pool of worker
 * threads. `depth` is how many batches the runner may have planning at once: with workers, several
 * batches are decrypted and encrypted in parallel while the main thread reads and writes.
 */
export interface BatchPlanner {
  readonly depth: number;
  plan(table: EncryptedTable, rows: BatchRow[]): Promise<RowPlan[]>;
  close(): Promise<void>;
}

export class InlinePlanner implements BatchPlanner {
  readonly depth = 1;
  readonly #planRow: ReturnType<typeof buildRowPlanner>;

  /** `scheme`: the run's own instance, holding whatever its start() and prepareCells() fetched. */
  constructor(spec: RowTransformSpec, scheme?: ValueScheme) {
    this.#planRow = buildRowPlanner(spec, scheme);
  }

  async plan(table: EncryptedTable, rows: BatchRow[]): Promise<RowPlan[]> {
    return rows.map((row) => this.#planRow(row, table));
  }

  async close(): Promise<void> {}
}

export class WorkerPoolPlanner implements BatchPlanner {
  readonly depth: number;
  readonly #workers: Worker[];
  readonly #pending = new Map<number, { resolve: (plans: RowPlan[]) => void; reject: (error: Error) => void }>();
  #nextId = 0;
  #nextWorker = 0;
  #broken: Error | undefined;

  constructor(spec: RowTransformSpec, threads: number) {
    this.#workers = Array.from({ length: threads }, () => this.#startWorker(spec));
    this.depth = threads + 1;
  }

  #startWorker(spec: RowTransformSpec): Worker {
    const worker = new Worker(new URL("./crypto-worker.js", import.meta.url), { workerData: spec });
    worker.on("message", (message: { id: number; plans?: PackedPlans; error?: string }) => {
      const waiting = this.#pending.get(message.id);
      if (waiting === undefined) return;
      this.#pending.delete(message.id);
      this.#unrefWhenIdle();
      if (message.plans !== undefined) waiting.resolve(unpackPlans(message.plans));
      else waiting.reject(new DbcryptError("internal", `crypto worker failed: ${message.error ?? "unknown error"}`));
    });
    worker.on("error", (error) => this.#failAll(error));
    worker.on("exit", (code) => {
      if (code !== 0) this.#failAll(new Error(`a crypto worker exited with code ${code}`));
    });
    worker.unref();
    return worker;
  }

  plan(table: EncryptedTable, rows: BatchRow[]): Promise<RowPlan[]> {
    if (this.#broken !== undefined) return Promise.reject(new DbcryptError("internal", `crypto worker stopped: ${this.#broken.message}`));
    const id = this.#nextId++;
    const worker = this.#workers[this.#nextWorker++ % this.#workers.length] as Worker;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      // Only the fields and the row's context travel, packed and transferred: row keys may be
      // buffers or bigints the worker has no use for, while a scheme's per-row key or additional
      // data needs the context.
      const packed = packRows(rows, table.columns.length);
      const request: PlanRequest = { id, table, rows: packed };
      // While a batch is with a worker, the worker must hold the event loop open: on SQLite no
      // socket does, and with only unref'd workers Node would exit mid-run (code 13, no message).
      worker.ref();
      worker.postMessage(request, transferablesOf(packed.strings));
    });
  }

  async close(): Promise<void> {
    this.#failAll(new Error("planner closed"));
    this.#workers.forEach((worker) => worker.removeAllListeners("exit"));
    await Promise.all(this.#workers.map((worker) => worker.terminate()));
  }

  #unrefWhenIdle(): void {
    if (this.#pending.size === 0) for (const worker of this.#workers) worker.unref();
  }

  #failAll(error: Error): void {
    this.#broken ??= error;
    for (const waiting of this.#pending.values()) waiting.reject(new DbcryptError("internal", `crypto worker stopped: ${error.message}`));
    this.#pending.clear();
    this.#unrefWhenIdle();
  }
}

/** Worker threads pay off only when there is enough work to amortise starting them. */
export const MIN_VALUES_FOR_WORKERS = 20_000;

export function defaultCryptoThreads(): number {
  return Math.max(1, availableParallelism() - 1);
}

/** A scheme whose opening depends on state this thread fetched (a KMS plugin's DEKs) plans on this thread. */
export function createPlanner(spec: RowTransformSpec, threads: number, expectedValues: number, scheme?: ValueScheme): BatchPlanner {
  const useWorkers = threads > 0 && expectedValues >= MIN_VALUES_FOR_WORKERS && scheme?.mainThreadOnly !== true;
  return useWorkers ? new WorkerPoolPlanner(spec, threads) : new InlinePlanner(spec, scheme);
}
