import type { Dialect, KeyRow } from "../db/dialect.js";
import type { DbcryptError } from "../errors.js";
import type { SchemeKey } from "../crypto/schemes/value-scheme.js";
import type { EmitEvent } from "./events.js";
import { DEFAULT_RETRY_POLICY, withBatchRetries, type RetryPolicy } from "./batch-retry.js";

export type RetryNotice = (what: string, error: DbcryptError, attempt: number, delayMs: number) => void;

/**
 * Every write to the keys table goes through here. Its statements take the same locks as batches
 * do (a revoke checks foreign keys against the encrypted tables), so they get the same bounded
 * retries with backoff on lock and busy timeouts, and give up the same way.
 */
export class KeysTableWriter {
  readonly #dialect: Dialect;
  readonly #onRetry: RetryNotice;
  readonly #policy: RetryPolicy;

  constructor(dialect: Dialect, onRetry: RetryNotice = () => undefined, policy: RetryPolicy = DEFAULT_RETRY_POLICY) {
    this.#dialect = dialect;
    this.#onRetry = onRetry;
    this.#policy = policy;
  }

  insertActiveKey(keyId: string, canary: string): Promise<KeyRow> {
    return this.#retried("insert key row", () => this.#dialect.insertActiveKey(keyId, canary));
  }

  revokeKey(keyId: string): Promise<"revoked" | "not-active"> {
    return this.#retried(`revoke key ${keyId}`, () => this.#dialect.revokeKey(keyId));
  }

  createKeysTable(): Promise<void> {
    return this.#retried("create the keys table", () => this.#dialect.createKeysTable());
  }

  #retried<T>(what: string, body: () => Promise<T>): Promise<T> {
    return withBatchRetries(this.#policy, body, (error, attempt, delayMs) => this.#onRetry(what, error, attempt, delayMs));
  }
}

/** Inserts active rows (with each key's canary) and reports them; returns the ids inserted. */
export async function recordKeys(keysWriter: KeysTableWriter, toRecord: SchemeKey[], canary: string, emit: EmitEvent): Promise<string[]> {
  const inserted: string[] = [];
  for (const key of toRecord) {
    const row = await keysWriter.insertActiveKey(key.id, key.seal(canary));
    emit({ type: "key-inserted", keyId: key.id, number: row.number });
    inserted.push(key.id);
  }
  return inserted;
}
