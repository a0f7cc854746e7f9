import { createHash, randomBytes } from "node:crypto";
import { DbcryptError } from "../../errors.js";
import type { OpenResult, RowContext, SchemeKey } from "../schemes/value-scheme.js";
import { decodeStrictBase64 } from "../strict-base64.js";
import { KmsPluginClient, KmsPluginError } from "./kms-plugin-client.js";
import {
  decodeEncryptedObject,
  dekSourceCacheKey,
  dekSourceProblem,
  encryptedObjectEncoder,
  HKDF_SHA256_XNONCE_AES_GCM_SEED,
  kmsV2PayloadOpener,
  sealKmsV2Payload,
  validateEncryptedObject,
  type EncryptedObject,
} from "./kms-v2-object.js";
import { AAD_INPUT, aadCandidates, K8S_PREFIX, unwrapEnvelope, withFormat, wrapCell, type CellFormat, type InnerOpener } from "./provider-keys.js";

/**
 * One `kms` provider (apiVersion v2) of an encryption config. A cell is base64(`k8s:enc:kms:v2:
 * <name>:` ‖ EncryptedObject), possibly in Obot's JSON envelope. The plugin is asked as the API
 * server asks it (shared/reference/schemes.md §1.6): one Encrypt per run for a fresh write seed,
 * and one Decrypt per distinct DEK source, cached. Opening itself stays synchronous, as every
 * SchemeKey's is, so the asynchronous calls happen first, in prepareWrites and prepareCells.
 *
 * Key ids are `kms:v2:<name>/<first 7 hex of SHA-256(plugin key id)>`: the plugin's key id (an
 * ARN, say) may be long, and only whether it changed matters (a cell under another key id than
 * Status reports is stale).
 */
const KMS_V2_PREFIX = `${K8S_PREFIX}kms:v2:`;
const KMS_V2_PREFIX_BYTES = Buffer.from(KMS_V2_PREFIX, "latin1");
const COLON = 0x3a;
/** Decrypt calls in flight at once while preparing cells: a cloud KMS answers in tens of ms, and throttles. */
const DEFAULT_DECRYPT_CONCURRENCY = 8;

export function kmsV2KeyIdFor(name: string, pluginKeyId: string): string {
  return `${kmsV2Family(name)}${createHash("sha256").update(pluginKeyId, "utf8").digest("hex").slice(0, 7)}`;
}

export function kmsV2Family(name: string): string {
  return `kms:v2:${name}/`;
}

type ParsedCell = { name: string; format: CellFormat; object: EncryptedObject } | { name: string; format: CellFormat; reason: string };

/** undefined when the text is not a KMS v2 cell at all; otherwise its provider name and object, or why it is not valid. */
function parseKmsV2Cell(text: string): ParsedCell | undefined {
  const { cell, format } = unwrapEnvelope(text);
  const bytes = decodeStrictBase64(cell);
  if (bytes === undefined || !bytes.subarray(0, KMS_V2_PREFIX_BYTES.length).equals(KMS_V2_PREFIX_BYTES)) return undefined;
  const end = bytes.indexOf(COLON, KMS_V2_PREFIX_BYTES.length);
  if (end <= KMS_V2_PREFIX_BYTES.length) return undefined;
  const name = bytes.subarray(KMS_V2_PREFIX_BYTES.length, end).toString("utf8");
  const decoded = decodeEncryptedObject(bytes.subarray(end + 1));
  if ("reason" in decoded) return { name, format, reason: decoded.reason };
  const problem = validateEncryptedObject(decoded.object);
  return problem === undefined ? { name, format, object: decoded.object } : { name, format, reason: problem };
}

/** The key id a KMS v2 cell names; `kms:v2:<name>/?` when its object does not decode or validate. */
export function kmsV2KeyIdOfCell(text: string): string | undefined {
  const parsed = parseKmsV2Cell(text);
  if (parsed === undefined) return undefined;
  return "object" in parsed ? kmsV2KeyIdFor(parsed.name, parsed.object.keyID) : `${kmsV2Family(parsed.name)}?`;
}

/** Decrypted DEKs and seeds of one provider, by upstream's cache key, and the Decrypts the plugin refused. */
class DekSources {
  readonly #secrets = new Map<string, Buffer>();
  readonly #refusals = new Map<string, string>();

  has(key: string): boolean {
    return this.#secrets.has(key) || this.#refusals.has(key);
  }

  secret(key: string): Buffer | undefined {
    return this.#secrets.get(key);
  }

  refusal(key: string): string | undefined {
    return this.#refusals.get(key);
  }

  remember(key: string, secret: Buffer): void {
    this.#secrets.set(key, secret);
    this.#refusals.delete(key);
  }

  refuse(key: string, reason: string): void {
    this.#refusals.set(key, reason);
  }

  toJSON(): { decrypted: number; refused: number } {
    return { decrypted: this.#secrets.size, refused: this.#refusals.size };
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return `DekSources(${this.#secrets.size} decrypted, ${this.#refusals.size} refused)`;
  }
}

/** Opening shared by the read and write keys of one provider. */
class KmsV2Cells {
  readonly name: string;
  readonly #sources: DekSources;
  readonly #inner: InnerOpener;

  constructor(name: string, sources: DekSources, inner: InnerOpener) {
    this.name = name;
    this.#sources = sources;
    this.#inner = inner;
  }

  /** `onlyKeyId`: refuse cells under any other key id (the write key opens its own only). */
  open(text: string, context: RowContext | undefined, onlyKeyId?: string): OpenResult {
    const parsed = parseKmsV2Cell(text);
    if (parsed === undefined || parsed.name !== this.name) {
      return { ok: false, reason: decodeStrictBase64(unwrapEnvelope(text).cell) === undefined ? "not padded standard base64" : `not a KMS v2 cell of provider ${this.name}` };
    }
    if ("reason" in parsed) return { ok: false, reason: `not a valid KMS v2 EncryptedObject: ${parsed.reason}` };
    const { object, format } = parsed;
    if (onlyKeyId !== undefined && kmsV2KeyIdFor(this.name, object.keyID) !== onlyKeyId) return { ok: false, reason: `not under key ${onlyKeyId}` };
    const cacheKey = dekSourceCacheKey(object).toString("latin1");
    const refusal = this.#sources.refusal(cacheKey);
    if (refusal !== undefined) return { ok: false, reason: `its KMS v2 DEK source did not decrypt (${refusal})` };
    const secret = this.#sources.secret(cacheKey);
    if (secret === undefined) return { ok: false, reason: `KMS v2 DEK source not decrypted: plugin ${this.name} was not asked for it in this run` };
    const opener = kmsV2PayloadOpener(object.encryptedDEKSourceType, secret, object.encryptedData);
    if (opener === undefined) return { ok: false, reason: "the KMS v2 encrypted data is too short" };
    const tried = aadCandidates(context);
    for (const aad of tried) {
      const plaintext = opener(aad);
      if (plaintext !== undefined) return withFormat(this.#inner(plaintext, context), plaintext, format);
    }
    return { ok: false, reason: `authentication failed with additional data ${tried.map((aad) => JSON.stringify(aad)).join(" or ")} (wrong additional data or corrupted value)` };
  }
}

/**
 * Opens every cell of one provider whose DEK source was prepared; the keyring matches it to any
 * key id starting with `idFamily`. It protects nothing of its own, so it is never recorded.
 */
export class KmsV2ReadKey implements SchemeKey {
  readonly id: string;
  readonly idFamily: string;
  readonly unkeyed = true;
  readonly source: string;
  readonly #cells: KmsV2Cells;

  constructor(cells: KmsV2Cells, source: string) {
    this.source = source;
    this.idFamily = kmsV2Family(cells.name);
    this.id = `${this.idFamily}*`;
    this.#cells = cells;
  }

  seal(): string {
    throw new DbcryptError("internal", `${this.id} only reads; writes go through the KMS v2 provider's write key`);
  }

  open(cell: string, context?: RowContext): OpenResult {
    return this.#cells.open(cell, context);
  }

  toJSON(): { id: string } {
    return { id: this.id };
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return `KmsV2ReadKey(${this.id})`;
  }
}

/**
 * Seals in seed mode under the seed one Encrypt wrapped for this run; opens cells under its own key
 * id. Never recorded in the keys table: its secret is the KMS's, and a canary sealed with this
 * run's seed would need a Decrypt before any later run could check it.
 */
export class KmsV2WriteKey implements SchemeKey {
  readonly id: string;
  readonly unkeyed = true;
  readonly source: string;
  readonly #prefix: Buffer;
  readonly #seed: Buffer;
  readonly #encode: (encryptedData: Buffer) => Buffer;
  readonly #cells: KmsV2Cells;

  constructor(cells: KmsV2Cells, seed: Buffer, wrapped: Omit<EncryptedObject, "encryptedData">, source: string) {
    this.id = kmsV2KeyIdFor(cells.name, wrapped.keyID);
    this.source = source;
    this.#prefix = Buffer.from(`${KMS_V2_PREFIX}${cells.name}:`, "utf8");
    this.#seed = seed;
    this.#encode = encryptedObjectEncoder(wrapped);
    this.#cells = cells;
  }

  seal(plaintext: string | Buffer, context?: RowContext, format?: string): string {
    const data = sealKmsV2Payload(HKDF_SHA256_XNONCE_AES_GCM_SEED, this.#seed, plaintext, context?.[AAD_INPUT] ?? "");
    return wrapCell(Buffer.concat([this.#prefix, this.#encode(data)]).toString("base64"), format);
  }

  open(cell: string, context?: RowContext): OpenResult {
    return this.#cells.open(cell, context, this.id);
  }

  toJSON(): { id: string } {
    return { id: this.id };
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return `KmsV2WriteKey(${this.id})`;
  }
}

export interface KmsV2ProviderOptions {
  /** The provider's `name`: the `<name>` of `k8s:enc:kms:v2:<name>:`. */
  name: string;
  endpoint: string;
  /** The provider's `timeout`; DEFAULT_KMS_TIMEOUT_MS when the config gives none. */
  timeoutMs?: number;
  /** Applied to every opened plaintext, as ProviderKey applies it (double encryption). */
  inner: InnerOpener;
  decryptConcurrency?: number;
}

export class KmsV2Provider {
  readonly name: string;
  readonly #client: KmsPluginClient;
  readonly #sources = new DekSources();
  readonly #cells: KmsV2Cells;
  readonly #readKey: KmsV2ReadKey;
  readonly #concurrency: number;
  #writeKey: KmsV2WriteKey | undefined;

  constructor(options: KmsV2ProviderOptions) {
    this.name = options.name;
    this.#client = new KmsPluginClient(options.timeoutMs === undefined ? { name: options.name, endpoint: options.endpoint } : { name: options.name, endpoint: options.endpoint, timeoutMs: options.timeoutMs });
    this.#cells = new KmsV2Cells(options.name, this.#sources, options.inner);
    this.#readKey = new KmsV2ReadKey(this.#cells, this.#client.describe());
    this.#concurrency = Math.max(1, options.decryptConcurrency ?? DEFAULT_DECRYPT_CONCURRENCY);
  }

  /** Status, refused unless healthy; `keyId` is the current key in dbcrypt's form. */
  async checkHealth(): Promise<{ keyId: string; version: string }> {
    const status = await this.#client.status();
    return { keyId: kmsV2KeyIdFor(this.name, status.keyId), version: status.version };
  }

  /**
   * A fresh seed for this run, wrapped by one Encrypt. As the API server does, the answer counts
   * only under the key Status reports: a plugin answering from another key is mid-rotation.
   */
  async prepareWrites(): Promise<SchemeKey> {
    const status = await this.#client.status();
    const seed = randomBytes(32);
    const wrapped = await this.#client.encrypt(seed);
    if (wrapped.keyId !== status.keyId) {
      throw new KmsPluginError("Encrypt", true, `${this.#client.describe()}: Encrypt answered under key ${kmsV2KeyIdFor(this.name, wrapped.keyId)} but Status reports ${kmsV2KeyIdFor(this.name, status.keyId)}`, "the plugin may be rotating its key; run again once it has settled");
    }
    const fixed = { keyID: wrapped.keyId, encryptedDEKSource: wrapped.ciphertext, annotations: wrapped.annotations, encryptedDEKSourceType: HKDF_SHA256_XNONCE_AES_GCM_SEED };
    // Upstream validates the answer as an object with placeholder data (GenerateTransformer).
    const problem = validateEncryptedObject({ ...fixed, encryptedData: Buffer.of(0) });
    if (problem !== undefined) throw new KmsPluginError("Encrypt", true, `${this.#client.describe()}: Encrypt returned an unusable answer: ${problem}`, "check the KMS plugin's logs");
    // Cells written with this seed then open in this run without asking the plugin.
    this.#sources.remember(dekSourceCacheKey(fixed).toString("latin1"), seed);
    this.#writeKey = new KmsV2WriteKey(this.#cells, seed, fixed, this.#client.describe());
    return this.#writeKey;
  }

  /**
   * For a dry run's plan: the key the run would write under, by Status alone. It cannot seal: a
   * dry run must not make the plugin Encrypt (a real KMS call, audited, needing encrypt rights).
   */
  async plannedWriteKey(): Promise<SchemeKey> {
    const { keyId } = await this.checkHealth();
    const source = this.#client.describe();
    const readKey = this.#readKey;
    return {
      id: keyId,
      unkeyed: true,
      source,
      seal: () => {
        throw new DbcryptError("internal", `${keyId} is only planned in a dry run; it cannot seal`);
      },
      open: (cell, context) => readKey.open(cell, context),
    };
  }

  writeKey(): SchemeKey {
    if (this.#writeKey === undefined) throw new DbcryptError("internal", `the KMS v2 provider ${this.name} has no write key: prepareWrites() was not called`);
    return this.#writeKey;
  }

  /**
   * Decrypts the DEK source of every cell of this provider not seen before, each distinct one
   * once. A plugin that does not answer, or fails (throttled, internal error), fails the whole
   * call; one that declines a source (its key deleted or not allowed) fails only that source's
   * cells, which then say so when opened.
   */
  async prepareCells(cells: Iterable<string>): Promise<void> {
    const pending = new Map<string, EncryptedObject>();
    for (const text of cells) {
      const parsed = parseKmsV2Cell(text);
      if (parsed === undefined || parsed.name !== this.name || !("object" in parsed)) continue;
      const cacheKey = dekSourceCacheKey(parsed.object).toString("latin1");
      if (!this.#sources.has(cacheKey) && !pending.has(cacheKey)) pending.set(cacheKey, parsed.object);
    }
    const queue = [...pending];
    let failed = false;
    const worker = async (): Promise<void> => {
      for (let next = queue.shift(); next !== undefined && !failed; next = queue.shift()) {
        const [cacheKey, object] = next;
        try {
          const secret = await this.#client.decrypt(object.encryptedDEKSource, object.keyID, object.annotations);
          const problem = dekSourceProblem(object.encryptedDEKSourceType, secret);
          if (problem === undefined) this.#sources.remember(cacheKey, secret);
          else this.#sources.refuse(cacheKey, problem);
        } catch (error) {
          if (!(error instanceof KmsPluginError) || !error.declined) {
            failed = true;
            throw error;
          }
          this.#sources.refuse(cacheKey, error.message);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#concurrency, queue.length) }, worker));
  }

  readKey(): KmsV2ReadKey {
    return this.#readKey;
  }

  close(): void {
    this.#client.close();
  }

  toJSON(): { name: string; sources: { decrypted: number; refused: number } } {
    return { name: this.name, sources: this.#sources.toJSON() };
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return `KmsV2Provider(${this.name})`;
  }
}
