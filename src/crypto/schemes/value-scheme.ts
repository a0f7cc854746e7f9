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
export type OpenResult = { ok: true; plaintext: Buffer } | { ok: false; reason: string };

/**
 * Other columns of the same row, by name, for schemes whose cells depend on them: additional
 * authenticated data built from other columns (Obot), or a per-row key derived from the master key
 * and a column (HMAC-SHA256 of a workspace id, AtelyaOS). Schemes that need none ignore it.
 */
export type RowContext = Readonly<Record<string, string | null>>;

/** One key as a scheme uses it. Key material stays inside; only the id is ever shown. */
export interface SchemeKey {
  readonly id: string;
  seal(plaintext: string | Buffer, context?: RowContext): string;
  open(cell: string, context?: RowContext): OpenResult;
}

export interface ValueScheme {
  /** The name config files use (`"scheme": "coder"`). */
  readonly name: string;
  readonly keyBytes: number;
  readonly keyIdSource: KeyIdSource;
  /** What every active row of the keys table holds, sealed with its key (its `test` column). */
  readonly canaryPlaintext: string;
  keyFromBytes(bytes: Uint8Array): SchemeKey;
  /**
   * For keyIdSource prefix or embedded: the key id a stored cell names, or undefined when the cell
   * is not this scheme's ciphertext (so it is plaintext).
   */
  keyIdOfCell?(cell: string): string | undefined;
  /** Names of the row's other columns the scheme needs as RowContext for this column. */
  contextColumns?(column: string): readonly string[];
}
