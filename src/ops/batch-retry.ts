import { DbcryptError } from "../errors.js";

/**
 * Retries a batch that lost a lock contest (lock or statement timeout, deadlock, serialization
 * failure, SQLite busy) with exponential backoff and jitter, asking for a smaller batch each time,
 * and gives up with a clear error after a bounded number of tries. Nothing of a failed batch was
 * committed, so retrying it from the same cursor is safe.
 */
export interface RetryPolicy {
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxAttempts: 6, baseDelayMs: 250, maxDelayMs: 10_000 };

export function backoffDelayMs(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const exponential = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  return Math.round(exponential / 2 + random() * (exponential / 2));
}

export async function withBatchRetries<T>(
  policy: RetryPolicy,
  body: (attempt: number) => Promise<T>,
  onRetry: (error: DbcryptError, attempt: number, delayMs: number) => void,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await body(attempt);
    } catch (error) {
      if (!(error instanceof DbcryptError) || !error.retryable) throw error;
      if (attempt >= policy.maxAttempts) {
        throw new DbcryptError("database_error", `gave up after ${attempt} tries: ${error.message}`, {
          hint: "the tables are busy; re-run later, with a smaller --batch-size or a longer --lock-timeout (PostgreSQL) or --busy-timeout (SQLite); finished batches are kept",
          cause: error,
        });
      }
      const delayMs = backoffDelayMs(policy, attempt);
      onRetry(error, attempt, delayMs);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}

/** Halve the batch after a failure; grow back by a quarter per success, up to the configured size. */
export function shrinkBatch(current: number): number {
  return Math.max(1, Math.floor(current / 2));
}

export function growBatch(current: number, configured: number): number {
  return Math.min(configured, Math.max(current + 1, Math.ceil(current * 1.25)));
}
