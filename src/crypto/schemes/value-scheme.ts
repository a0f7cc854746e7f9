/**
 * A value scheme: how one application stores an encrypted cell. It owns the cell's format
 * (encoding, prefix, nonce and tag layout), where a value's key id comes from, how a key's id is
 * derived, sealing and opening, and the canary the keys table holds. ops/ and db/ ask the scheme
 * and never name a cipher; a new scheme is one file implementing this plus one registry line
 * (schemes/registry.ts). Coder's is coder-aes256gcm.ts.
 */

/**
 * Where a stored value's key id comes from:
 *  - column: a sibling `<column>_key_id` column (Coder); the database can group and filter by it;
 *  - prefix: a key name in the value's prefix (Kubernetes `k8s:enc:aesgcm:v1:<name>:`);
 *  - embedded: an id inside the value (KMS v2 `EncryptedObject.keyID`);
 *  - trial: none is stored; the key is found by authenticated trial decryption.
 * For all but `column`, keyIdOfCell (prefix, embedded) or trial opening (trial) tells.
 */
export type KeyIdSource = "column" | "prefix" | "embedded" | "trial";

/** Why a cell did not open, in words safe to print: never any part of the value or the key. */
export type OpenResult = { ok: true; plaintext: Buffer; format?: string } | { ok: false; reason: string };

/**
 * Values from other columns of the same row, by the scheme's input name (ValueScheme.contextInputs),
 * for schemes whose cells depend on them: additional authenticated data built from other columns
 * (Obot), or a per-row key derived from the master key and a column (HMAC-SHA256 of a workspace
 * id, AtelyaOS). The config maps each input to a column per table. Schemes that need none ignore it.
 */
export type RowContext = Readonly<Record<string, string | null>>;

/**
 * Text every cell under one key starts with, exactly: `literal`, then one of `next` (the partial
 * base64 character the key's prefix shares with the payload; "" when there is none), with the
 * whole value a multiple of four characters ("bare") or Obot's JSON envelope around such a cell.
 * Lets the database count values per key for schemes whose key id is a prefix of the value.
 */
export interface CellPrefix {
  literal: string;
  next: string;
  form: "bare" | "json-envelope";
}

export interface KeyPrefixes {
  keyId: string;
  prefixes: CellPrefix[];
}

/** The RowContext input that carries a table's row flag (Obot's `encrypted` column), when it has one. */
export const ROW_FLAG_INPUT = "encrypted";

/**
 * Whether a row's values are cells, by its row flag as read (PostgreSQL says 'true', SQLite 1). A
 * row of a table without a flag always is; a NULL flag is unset, as the SQL census reads it.
 */
export function rowFlagSet(context: RowContext | undefined): boolean {
  if (context === undefined || !(ROW_FLAG_INPUT in context)) return true;
  const flag = context[ROW_FLAG_INPUT];
  return flag === "true" || flag === "t" || flag === "1";
}

/** Thrown by seal when a row cannot be given a key (its workspace id is NULL); the message names no value. */
export class RowKeyUnavailable extends Error {}

/** One key as a scheme uses it. Key material stays inside; only the id is ever shown. */
export interface SchemeKey {
  readonly id: string;
  /**
   * Never recorded in the keys table: a pseudo-key that protects nothing (Kubernetes' identity
   * provider), or one whose secret lives in a KMS and is not dbcrypt's to record.
   */
  readonly unkeyed?: boolean;
  /** Where a configured key came from (`encryption config /etc/obot/enc.yaml`), for plans and status. */
  readonly source?: string;
  /** Set on a key that opens every key id starting with this (a KMS plugin opens whatever key ids it holds). */
  readonly idFamily?: string;
  /**
   * `format` is what open() reported for the value being replaced (its text encoding, say), so a
   * rewrite keeps the spelling the application wrote; without it the scheme's default is used.
   */
  seal(plaintext: string | Buffer, context?: RowContext, format?: string): string;
  open(cell: string, context?: RowContext): OpenResult;
  /**
   * Whether the cell authenticates under this key, without decrypting it, where the cipher makes
   * that cheaper (secretbox: the Poly1305 tag alone). Trial decryption in a census only needs to
   * know which key a value is under; `format` as open() would report it.
   */
  verify?(cell: string, context?: RowContext): { ok: true; format?: string } | { ok: false };
}

export interface ValueScheme {
  /** The name config files use (`"scheme": "coder"`). */
  readonly name: string;
  readonly keyBytes: number;
  readonly keyIdSource: KeyIdSource;
  /**
   * True where the application keeps no keys table of its own (its cells carry no reference to
   * one): the keys table is then dbcrypt's record only, and a key missing from it is no fault.
   */
  readonly keysTableIsDbcrypts?: boolean;
  /** What every active row of the keys table holds, sealed with its key (its `test` column). */
  readonly canaryPlaintext: string;
  keyFromBytes(bytes: Uint8Array): SchemeKey;
  /**
   * For keyIdSource prefix or embedded: the key id a stored cell names, or undefined when the cell
   * is not this scheme's ciphertext (so it is plaintext).
   */
  keyIdOfCell?(cell: string, context?: RowContext): string | undefined;
  /**
   * For keyIdSource trial: whether a cell has the shape of this scheme's ciphertext (decodes to
   * at least nonce and tag). Such a cell counts as encrypted, and the key that opens it is its key;
   * any other non-NULL cell is plaintext.
   */
  looksSealed?(cell: string): boolean;
  /**
   * For schemes whose cells come in several spellings (base64 variants, hex; a JSON envelope):
   * what one cell says about its column's spelling (`opened`: the format its opening reported, if
   * it was opened). The census tallies these per column and asks columnSpelling for the verdict.
   */
  spellingEvidence?(cell: string, opened: string | undefined): readonly string[];
  columnSpelling?(evidence: ReadonlyMap<string, number>): string | undefined;
  /** The spelling to seal a rewritten cell in (oldCell null: it was plaintext). */
  rewriteSpelling?(oldCell: string | null, opened: string | undefined, column: string | undefined): string | undefined;
  /** Names of the RowContext inputs every cell needs (the config maps each to a column). */
  readonly contextInputs?: readonly string[];
  /** For keyIdSource prefix: the exact text prefixes of cells under this key id, if the scheme can say. */
  cellPrefixes?(keyId: string): CellPrefix[] | undefined;
  /** Inputs the scheme uses when a table provides them (Kubernetes' additional data, Obot's row flag). */
  readonly optionalContextInputs?: readonly string[];
  /**
   * For schemes whose keys come with their own configuration (Kubernetes encryption configs)
   * rather than from --keys: what it can read with, and what it writes with.
   */
  configuredKeys?(): { read: SchemeKey[]; write: SchemeKey | undefined };
  /** The resources those configurations cover (Kubernetes `resources`), to warn about any no walked table holds. */
  configuredResources?(): string[];
  /** The options this instance was made with, so a worker thread can make the same one. */
  readonly options?: Readonly<Record<string, unknown>>;
  /**
   * For schemes whose keys sit behind a service (a KMS v2 plugin): reach it before anything is
   * written, so an unhealthy service stops the run while nothing has changed. `write`: also get
   * what writing needs (one Encrypt of a fresh seed); `plan`: learn the write key's id for a dry
   * run's plan without anything that could write (no Encrypt). Opening and sealing stay synchronous.
   */
  start?(use: "read" | "plan" | "write"): Promise<void>;
  /** Fetches what opening these cells needs (their DEK sources), before a batch is opened. */
  prepareCells?(cells: readonly string[]): Promise<void>;
  /** Closes connections start() opened. */
  close?(): Promise<void>;
  /** True where opening depends on state fetched by this instance (prepareCells), which a worker thread's copy would not have. */
  readonly mainThreadOnly?: boolean;
}

/**
 * Makes a scheme from its options (`"schemeOptions"` in the config file). `origin` names where
 * the options came from, for errors. A scheme without options is wrapped by registerScheme.
 */
export interface SchemeFactory {
  readonly name: string;
  /** One line for `--help` and docs: what the scheme is. */
  readonly summary: string;
  create(options: Readonly<Record<string, unknown>> | undefined, origin: string): ValueScheme;
}
