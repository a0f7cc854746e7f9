import type { BenchKey } from "./keys.js";

/**
 * Deterministic synthetic rows: the plaintext token of row `id` can be recomputed at the end to
 * check that every rotation kept the data intact. Tokens are 100-200 printable bytes, like OAuth
 * access tokens; a few ordinary columns ride along so rows have a realistic width.
 */
export const TABLE = "oauth_tokens";
export const MIN_TOKEN_BYTES = 100;
export const MAX_TOKEN_BYTES = 200;
const ALPHABET = Buffer.from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", "latin1");
const PROVIDERS = ["github", "gitlab", "google", "okta", "azure-ad", "bitbucket"];
const SCOPES = ["repo read:org", "openid profile email", "read_api", "offline_access", "user:email", "api write_repository"];

export interface Chunk {
  ids: number[];
  userIds: string[];
  providers: string[];
  scopes: string[];
  tokens: string[];
}

function mix32(seed: number): number {
  let x = seed | 0;
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

/** `bytes`: a fixed size instead of a token's 100-200 (the big-value tables of issue 12). */
export function tokenPlaintext(seed: number, id: number, bytes?: number): Buffer {
  let state = mix32(seed ^ Math.imul(id, 0x9e3779b1)) || 1;
  const length = bytes ?? MIN_TOKEN_BYTES + (state % (MAX_TOKEN_BYTES - MIN_TOKEN_BYTES + 1));
  const out = Buffer.allocUnsafe(length);
  out[0] = 0x67; // "gho_"-style prefix
  out[1] = 0x68;
  out[2] = 0x6f;
  out[3] = 0x5f;
  for (let i = 4; i < length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    out[i] = ALPHABET[(state >>> 0) & 63] as number;
  }
  return out;
}

function userId(seed: number, id: number): string {
  const a = mix32(seed + id).toString(16).padStart(8, "0");
  const b = mix32(seed ^ (id * 31)).toString(16).padStart(8, "0");
  return `${a}-${b.slice(0, 4)}-4${b.slice(4, 7)}-8${a.slice(0, 3)}-${id.toString(16).padStart(12, "0")}`;
}

/** Rows firstId .. firstId+count-1, tokens sealed under `key`. */
export function makeChunk(seed: number, firstId: number, count: number, key: BenchKey, valueBytes?: number): Chunk {
  const chunk: Chunk = { ids: [], userIds: [], providers: [], scopes: [], tokens: [] };
  for (let id = firstId; id < firstId + count; id++) {
    chunk.ids.push(id);
    chunk.userIds.push(userId(seed, id));
    chunk.providers.push(PROVIDERS[id % PROVIDERS.length] as string);
    chunk.scopes.push(SCOPES[(id >>> 3) % SCOPES.length] as string);
    chunk.tokens.push(key.seal(tokenPlaintext(seed, id, valueBytes)));
  }
  return chunk;
}

export function sliceChunk(chunk: Chunk, count: number): Chunk {
  return {
    ids: chunk.ids.slice(0, count),
    userIds: chunk.userIds.slice(0, count),
    providers: chunk.providers.slice(0, count),
    scopes: chunk.scopes.slice(0, count),
    tokens: chunk.tokens.slice(0, count),
  };
}
