/**
 * A KMS v2 plugin for tests: a real gRPC KeyManagementService (the repository's proto/kms-v2.proto)
 * on a unix socket in a temporary directory, inside the test process (the CLI under test runs as a
 * child process, so it can dial it). Keys are local 32-byte AES keys standing in for a cloud KMS:
 * rotateKey() makes a new current key and old ones still decrypt.
 *
 * Plugin ciphertext: "tkms1" ‖ u8 len ‖ key id ‖ nonce ‖ AES-GCM(key, DEK source) with the key id
 * and the annotation bound as additional data, so a Decrypt with the wrong key id or without the
 * annotation fails, as a real plugin's would. Also exports how the API server writes cells through
 * such a plugin, for fixtures. Never imports from src/.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { openData, readObject, sealData, writeObject } from "./kms-v2-wire.js";

const PROTO_PATH = fileURLToPath(new URL("../../proto/kms-v2.proto", import.meta.url));
const MAGIC = Buffer.from("tkms1", "latin1");
export const TEST_ANNOTATION = "version.kms.dbcrypt.test";

export type KmsMethod = "Status" | "Encrypt" | "Decrypt";

export interface Wrapped {
  ciphertext: Buffer;
  keyId: string;
  annotations: Record<string, Buffer>;
}

class PluginRefusal extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

export class KmsPluginServer {
  readonly endpoint: string;
  readonly socketPath: string;
  readonly calls: Record<KmsMethod, number> = { Status: 0, Encrypt: 0, Decrypt: 0 };
  readonly #dir: string;
  readonly #server: grpc.Server;
  readonly #keys = new Map<string, Buffer>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #annotate: boolean;
  #current = "";
  #healthz = "ok";
  #version = "v2";
  #delayMs = 0;
  #mismatch = false;

  readonly #bindTarget: string;

  private constructor(dir: string, server: grpc.Server, annotate: boolean, abstract: boolean) {
    this.#dir = dir;
    this.socketPath = join(dir, "kms.sock");
    // An abstract socket (Linux) is `/@name` in a Kubernetes endpoint and a leading NUL to Node.
    const abstractName = `dbcrypt-kms-${randomBytes(6).toString("hex")}`;
    this.endpoint = abstract ? `unix:///@${abstractName}` : `unix://${this.socketPath}`;
    this.#bindTarget = abstract ? `unix:\0${abstractName}` : this.endpoint;
    this.#server = server;
    this.#annotate = annotate;
    this.rotateKey();
  }

  static async start(options: { annotate?: boolean; abstract?: boolean } = {}): Promise<KmsPluginServer> {
    const definition = protoLoader.loadSync(PROTO_PATH, { keepCase: true, longs: String, defaults: true });
    const service = ((grpc.loadPackageDefinition(definition).v2 as grpc.GrpcObject).KeyManagementService as grpc.ServiceClientConstructor).service;
    const server = new grpc.Server();
    const plugin = new KmsPluginServer(mkdtempSync(join(tmpdir(), "dbcrypt-kms-")), server, options.annotate ?? true, options.abstract ?? false);
    server.addService(service, {
      Status: plugin.#handler("Status", () => ({ version: plugin.#version, healthz: plugin.#healthz, key_id: plugin.#current })),
      Encrypt: plugin.#handler("Encrypt", (request) => {
        const wrapped = plugin.wrap(request.plaintext as Buffer);
        return { ciphertext: wrapped.ciphertext, key_id: wrapped.keyId, annotations: wrapped.annotations };
      }),
      Decrypt: plugin.#handler("Decrypt", (request) => ({ plaintext: plugin.unwrap(request.ciphertext as Buffer, request.key_id as string, request.annotations as Record<string, Buffer>) })),
    });
    await new Promise<void>((resolve, reject) => server.bindAsync(plugin.#bindTarget, grpc.ServerCredentials.createInsecure(), (error) => (error === null ? resolve() : reject(error))));
    return plugin;
  }

  get currentKeyId(): string {
    return this.#current;
  }

  /** A new current key, as a cloud KMS key rotation: Status reports it, Encrypt uses it, old keys still decrypt. */
  rotateKey(): string {
    this.#current = `local-kms-key-${this.#keys.size + 1}-${randomBytes(4).toString("hex")}`;
    this.#keys.set(this.#current, randomBytes(32));
    return this.#current;
  }

  setHealthz(text: string): void {
    this.#healthz = text;
  }

  setVersion(text: string): void {
    this.#version = text;
  }

  /** Every answer comes this long after its request. */
  setDelayMs(ms: number): void {
    this.#delayMs = ms;
  }

  /** Encrypt answers under a key Status does not report yet (a plugin caught mid-rotation). */
  setEncryptKeyIdMismatch(on: boolean): void {
    this.#mismatch = on;
  }

  resetCalls(): void {
    for (const method of Object.keys(this.calls) as KmsMethod[]) this.calls[method] = 0;
  }

  /** What Encrypt does, without the gRPC call (not counted). */
  wrap(plaintext: Buffer): Wrapped {
    let keyId = this.#current;
    if (this.#mismatch) {
      keyId = `${this.#current}-next`;
      if (!this.#keys.has(keyId)) this.#keys.set(keyId, randomBytes(32));
    }
    const annotations: Record<string, Buffer> = this.#annotate ? { [TEST_ANNOTATION]: Buffer.from("1") } : {};
    const nonce = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", this.#keys.get(keyId) as Buffer, nonce);
    cipher.setAAD(this.#aad(keyId, annotations));
    const id = Buffer.from(keyId, "utf8");
    const ciphertext = Buffer.concat([MAGIC, Buffer.of(id.length), id, nonce, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
    return { ciphertext, keyId, annotations };
  }

  /** What Decrypt does, without the gRPC call (not counted). */
  unwrap(ciphertext: Buffer, keyId: string, annotations: Record<string, Buffer>): Buffer {
    const key = this.#keys.get(keyId);
    if (key === undefined) throw new PluginRefusal(grpc.status.NOT_FOUND, `no key ${keyId}`);
    const id = Buffer.from(keyId, "utf8");
    const head = Buffer.concat([MAGIC, Buffer.of(id.length), id]);
    if (!ciphertext.subarray(0, head.length).equals(head)) throw new PluginRefusal(grpc.status.INVALID_ARGUMENT, "ciphertext was not made with this key id");
    const sealed = ciphertext.subarray(head.length);
    try {
      const decipher = createDecipheriv("aes-256-gcm", key, sealed.subarray(0, 12));
      decipher.setAAD(this.#aad(keyId, annotations));
      decipher.setAuthTag(sealed.subarray(sealed.length - 16));
      return Buffer.concat([decipher.update(sealed.subarray(12, sealed.length - 16)), decipher.final()]);
    } catch {
      throw new PluginRefusal(grpc.status.INVALID_ARGUMENT, "ciphertext does not authenticate");
    }
  }

  async stop(): Promise<void> {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#server.forceShutdown();
    rmSync(this.#dir, { recursive: true, force: true });
  }

  #aad(keyId: string, annotations: Record<string, Buffer>): Buffer {
    return Buffer.concat([Buffer.from(keyId, "utf8"), Buffer.of(0), annotations[TEST_ANNOTATION] ?? Buffer.alloc(0)]);
  }

  #handler(method: KmsMethod, answer: (request: Record<string, unknown>) => object): grpc.handleUnaryCall<Record<string, unknown>, object> {
    return (call, callback) => {
      this.calls[method]++;
      const respond = (): void => {
        try {
          callback(null, answer(call.request));
        } catch (error) {
          const refusal = error instanceof PluginRefusal ? error : new PluginRefusal(grpc.status.INTERNAL, String(error));
          callback({ code: refusal.code, details: refusal.message });
        }
      };
      if (this.#delayMs === 0) return respond();
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        respond();
      }, this.#delayMs);
      this.#timers.add(timer);
    };
  }
}

/**
 * How the Kubernetes API server writes cells through this plugin (kmsv2 envelope.go): one
 * Encrypt of a fresh seed (mode "seed", the default since 1.29) or DEK ("aes-gcm-key") per
 * process start, then every value under it with the row's additional data. The Encrypt is done
 * in-process, so the server's call counters see only what the code under test asks.
 */
export function kubernetesKmsV2Writer(server: KmsPluginServer, name: string, mode: "seed" | "aes-gcm-key" = "seed"): { keyId: string; seal(plaintext: string | Buffer, aad?: string): string } {
  const type = mode === "seed" ? 1 : 0;
  const secret = randomBytes(32);
  const wrapped = server.wrap(secret);
  const prefix = Buffer.from(`k8s:enc:kms:v2:${name}:`, "utf8");
  return {
    keyId: wrapped.keyId,
    seal(plaintext, aad = "") {
      const data = sealData(type, secret, typeof plaintext === "string" ? Buffer.from(plaintext, "utf8") : plaintext, aad);
      const object = writeObject({ encryptedData: data, keyID: wrapped.keyId, encryptedDEKSource: wrapped.ciphertext, annotations: wrapped.annotations, type });
      return Buffer.concat([prefix, object]).toString("base64");
    },
  };
}

/** How the API server reads a cell back through this plugin: the plaintext, or undefined. */
export function kubernetesKmsV2Open(server: KmsPluginServer, name: string, cell: string, aad = ""): string | undefined {
  const bytes = Buffer.from(cell, "base64");
  const prefix = Buffer.from(`k8s:enc:kms:v2:${name}:`, "utf8");
  if (!bytes.subarray(0, prefix.length).equals(prefix)) return undefined;
  const object = readObject(bytes.subarray(prefix.length));
  const secret = server.unwrap(object.encryptedDEKSource, object.keyID, object.annotations);
  return openData(object.type, secret, object.encryptedData, aad)?.toString("utf8");
}
