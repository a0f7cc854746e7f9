/**
 * The event stream every operation emits. Reporters render it (a bar on a TTY, plain lines in
 * logs, JSON); ops never print. Events carry key ids, table/column labels, counts and row keys,
 * never values or key material.
 */
export const EVENT_SCHEMA_VERSION = 1;

export type StopReason = "done" | "deadline" | "signal";

export type DbcryptEvent =
  | { type: "start"; command: string; target: string; dryRun: boolean; tables: { table: string; rows: number }[]; totalRows: number }
  | { type: "key-inserted"; keyId: string; number: number }
  | { type: "pass"; pass: number; reason: string }
  | { type: "table-start"; table: string; rows: number }
  | { type: "batch"; table: string; scanned: number; written: number; conflicts: number; undecryptable: number; tableDone: number; tableRows: number; done: number; totalRows: number }
  | { type: "undecryptable"; table: string; column: string; rowKey: Record<string, string>; keyId: string | null; reason: string }
  | { type: "skipped-concurrent"; table: string; rows: number }
  | { type: "throttle"; reason: string; waitMs: number }
  | { type: "retry"; table: string; attempt: number; error: string; delayMs: number; nextBatchSize: number }
  | { type: "table-done"; table: string; written: number; conflicts: number; undecryptable: number }
  | { type: "key-revoked"; keyId: string }
  | { type: "key-kept"; keyId: string; reason: string }
  | { type: "stop"; reason: StopReason; message: string };

export type EmitEvent = (event: DbcryptEvent) => void;
