import type { Dialect } from "../db/dialect.js";
import type { EmitEvent } from "./events.js";

/**
 * Keeps a run gentle on a live database: a fixed pause between batches, a ceiling on values per
 * second, and (PostgreSQL) a pause while replicas lag behind. Waiting happens only between
 * batches, never inside a transaction, and gives way at once to a stop request.
 */
export interface PacingOptions {
  sleepMs: number;
  maxValuesPerSecond: number | undefined;
  maxReplicaLagMs: number | undefined;
}

export const NO_PACING: PacingOptions = { sleepMs: 0, maxValuesPerSecond: undefined, maxReplicaLagMs: undefined };

/** Whether a run waits between batches (--sleep, --max-rows-per-second, --max-replica-lag). */
export function isPaced(options: PacingOptions): boolean {
  return options.sleepMs > 0 || options.maxValuesPerSecond !== undefined || options.maxReplicaLagMs !== undefined;
}

const LAG_CHECK_INTERVAL_MS = 1_000;

export class Pacer {
  readonly #options: PacingOptions;
  readonly #dialect: Dialect;
  readonly #emit: EmitEvent;
  readonly #shouldStop: () => boolean;
  readonly #startedAt = Date.now();
  #valuesDone = 0;
  #lastLagCheck = 0;

  constructor(options: PacingOptions, dialect: Dialect, emit: EmitEvent, shouldStop: () => boolean) {
    this.#options = options;
    this.#dialect = dialect;
    this.#emit = emit;
    this.#shouldStop = shouldStop;
  }

  /** Waits while replicas lag more than allowed. */
  async beforeBatch(): Promise<void> {
    const limit = this.#options.maxReplicaLagMs;
    if (limit === undefined || this.#dialect.replicaLagMs === undefined) return;
    while (!this.#shouldStop()) {
      if (Date.now() - this.#lastLagCheck < LAG_CHECK_INTERVAL_MS) return;
      this.#lastLagCheck = Date.now();
      const lagMs = await this.#dialect.replicaLagMs();
      if (lagMs <= limit) return;
      this.#emit({ type: "throttle", reason: `replica lag ${Math.round(lagMs)}ms > ${limit}ms`, waitMs: LAG_CHECK_INTERVAL_MS });
      await this.#sleep(LAG_CHECK_INTERVAL_MS);
    }
  }

  async afterBatch(values: number): Promise<void> {
    this.#valuesDone += values;
    let waitMs = this.#options.sleepMs;
    const ceiling = this.#options.maxValuesPerSecond;
    if (ceiling !== undefined) {
      const earliest = this.#startedAt + (this.#valuesDone / ceiling) * 1000;
      waitMs = Math.max(waitMs, earliest - Date.now());
    }
    if (waitMs > 0) await this.#sleep(waitMs);
  }

  async #sleep(ms: number): Promise<void> {
    const until = Date.now() + ms;
    // Sleep in short slices so a signal or deadline is honoured promptly.
    while (!this.#shouldStop() && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(100, until - Date.now())));
    }
  }
}
