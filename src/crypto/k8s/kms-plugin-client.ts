import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import type * as Grpc from "@grpc/grpc-js";
import type * as ProtoLoader from "@grpc/proto-loader";
import { formatDuration } from "../../durations.js";
import { DbcryptError } from "../../errors.js";
import { KMS_V2_PROTO_PATH } from "./kms-v2-object.js";

/**
 * A KMS v2 plugin over its unix socket, called the way the API server's kmsv2/grpc_service.go
 * does (shared/reference/schemes.md §1.7): insecure channel, authority `localhost`, wait for
 * ready, the provider's timeout as each call's deadline, a fresh uid per call. Every failure is
 * one line naming the plugin, its socket and the call; never the plaintext or ciphertext.
 */

/** Kubernetes' default when a kms provider gives no `timeout`. */
export const DEFAULT_KMS_TIMEOUT_MS = 3000;

const GO_DURATION_UNITS_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, "μs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go duration ("3s", "500ms", "1m30s", "1.5h") in milliseconds, or undefined when it is not one. */
export function parseGoDuration(text: string): number | undefined {
  const match = /^([-+]?)(.*)$/s.exec(text) as RegExpExecArray;
  const body = match[2] as string;
  if (body === "0") return 0;
  if (body === "") return undefined;
  let total = 0;
  const part = /(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;
  let at = 0;
  while (at < body.length) {
    part.lastIndex = at;
    const piece = part.exec(body);
    if (piece === null) return undefined;
    total += Number(piece[1]) * (GO_DURATION_UNITS_MS[piece[2] as string] as number);
    at = part.lastIndex;
  }
  return match[1] === "-" ? -total : total;
}

export interface KmsEndpoint {
  /** As configured, for messages. */
  endpoint: string;
  /** What grpc-js dials. */
  target: string;
  /** The socket file, or undefined for an abstract socket (nothing on disk to look for). */
  socketPath: string | undefined;
}

/**
 * k8s.io/kms ParseEndpoint: only `unix://`; a path starting with `/@` names an abstract socket,
 * which Go spells `@name` and Node (so grpc-js's unix resolver) spells with a leading NUL.
 * A relative path is refused: Go's URL parser would silently read its first segment as a host.
 */
export function parseKmsEndpoint(endpoint: string): KmsEndpoint {
  const path = endpoint.startsWith("unix://") ? endpoint.slice("unix://".length) : undefined;
  if (path === undefined || !path.startsWith("/") || path.length < 2 || /[\0?#]/.test(path)) {
    throw new DbcryptError("bad_config", `KMS endpoint ${JSON.stringify(endpoint)} is not unix:// followed by an absolute socket path`, {
      hint: "write the kms provider's endpoint as unix:///path/to/plugin.sock (or unix:///@name for an abstract socket)",
    });
  }
  if (path.startsWith("/@")) return { endpoint, target: `unix:\0${path.slice(2)}`, socketPath: undefined };
  return { endpoint, target: `unix://${path}`, socketPath: path };
}

export interface KmsStatus {
  version: string;
  healthz: string;
  keyId: string;
}

export interface KmsEncryptResult {
  ciphertext: Buffer;
  keyId: string;
  annotations: Record<string, Buffer>;
}

export type KmsCall = "Status" | "Encrypt" | "Decrypt";

/**
 * A kms_unavailable error that also says whether the plugin answered: `answered` false (no
 * answer within the deadline, no connection) is about the plugin's reachability; true means it
 * refused this one request, which for a Decrypt concerns only the cells of that DEK source.
 */
export class KmsPluginError extends DbcryptError {
  readonly call: KmsCall;
  readonly answered: boolean;
  /**
   * The plugin declined this one request (the key it names is deleted or not allowed): other
   * requests may still work. Throttling and internal errors are not this: they stop the run.
   */
  readonly declined: boolean;

  constructor(call: KmsCall, answered: boolean, message: string, hint: string, declined = false) {
    super("kms_unavailable", message, { hint });
    this.call = call;
    this.answered = answered;
    this.declined = declined;
  }
}

const KEY_ID_MAX_BYTES = 1024;
/**
 * gRPC is loaded on the first call to a plugin, not when dbcrypt starts: it costs more start-up
 * time than the rest of a status run on a small database, and only KMS runs use it. Both packages
 * are CommonJS, so a synchronous require serves the synchronous constructor paths.
 */
const require = createRequire(import.meta.url);
let grpcModule: typeof Grpc | undefined;
function grpcLibrary(): typeof Grpc {
  grpcModule ??= require("@grpc/grpc-js") as typeof Grpc;
  return grpcModule;
}

function noAnswer(code: number): boolean {
  const { status } = grpcLibrary();
  return code === status.DEADLINE_EXCEEDED || code === status.UNAVAILABLE || code === status.CANCELLED;
}

function declining(code: number): boolean {
  const { status } = grpcLibrary();
  return code === status.INVALID_ARGUMENT || code === status.NOT_FOUND || code === status.PERMISSION_DENIED || code === status.FAILED_PRECONDITION;
}

let serviceConstructor: Grpc.ServiceClientConstructor | undefined;
function keyManagementService(): Grpc.ServiceClientConstructor {
  if (serviceConstructor === undefined) {
    const grpc = grpcLibrary();
    const protoLoader = require("@grpc/proto-loader") as typeof ProtoLoader;
    const definition = protoLoader.loadSync(KMS_V2_PROTO_PATH, { keepCase: true, longs: String, defaults: true });
    const v2 = grpc.loadPackageDefinition(definition).v2 as Grpc.GrpcObject;
    serviceConstructor = v2.KeyManagementService as Grpc.ServiceClientConstructor;
  }
  return serviceConstructor;
}

type UnaryMethod = (request: object, metadata: Grpc.Metadata, options: Grpc.CallOptions, callback: (error: Grpc.ServiceError | null, response?: Record<string, unknown>) => void) => Grpc.ClientUnaryCall;

/** Plugin text (healthz, error details) on one line and bounded, for a message. */
function oneLine(text: string, limit = 200): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > limit ? `${flat.slice(0, limit)}…` : flat;
}

export interface KmsPluginClientOptions {
  /** The kms provider's `name` in the encryption config. */
  name: string;
  endpoint: string;
  timeoutMs?: number;
}

export class KmsPluginClient {
  readonly name: string;
  readonly endpoint: KmsEndpoint;
  readonly timeoutMs: number;
  #client: Grpc.Client | undefined;

  constructor(options: KmsPluginClientOptions) {
    this.name = options.name;
    this.endpoint = parseKmsEndpoint(options.endpoint);
    this.timeoutMs = options.timeoutMs ?? DEFAULT_KMS_TIMEOUT_MS;
    if (!(this.timeoutMs > 0) || !Number.isFinite(this.timeoutMs)) {
      throw new DbcryptError("bad_config", `KMS plugin ${this.name}: the timeout must be a positive duration`, { hint: 'write the kms provider\'s timeout as a Go duration such as "3s"' });
    }
  }

  /** Made on the first call: constructing the client would load gRPC. */
  #connection(): Grpc.Client {
    if (this.#client === undefined) {
      const Service = keyManagementService();
      this.#client = new Service(this.endpoint.target, grpcLibrary().credentials.createInsecure(), { "grpc.default_authority": "localhost" });
    }
    return this.#client;
  }

  async status(): Promise<KmsStatus> {
    const response = await this.#call("Status", {});
    const status = { version: String(response.version ?? ""), healthz: String(response.healthz ?? ""), keyId: String(response.key_id ?? "") };
    const hint = "check the KMS plugin's logs and its access to its key";
    if (status.version !== "v2" && status.version !== "v2beta1") throw this.#refusal("Status", `Status reports version ${JSON.stringify(oneLine(status.version))}; dbcrypt speaks v2 and v2beta1`, "run a KMS v2 plugin on this socket");
    if (status.healthz !== "ok") throw this.#refusal("Status", `Status reports healthz ${JSON.stringify(oneLine(status.healthz))}`, hint);
    const keyIdProblem = keyIdProblemOf(status.keyId);
    if (keyIdProblem !== undefined) throw this.#refusal("Status", `Status reports ${keyIdProblem}`, hint);
    return status;
  }

  async encrypt(plaintext: Buffer): Promise<KmsEncryptResult> {
    const response = await this.#call("Encrypt", { plaintext });
    const ciphertext = response.ciphertext as Buffer | undefined;
    const keyId = String(response.key_id ?? "");
    if (ciphertext === undefined || ciphertext.length === 0) throw this.#refusal("Encrypt", "Encrypt returned an empty ciphertext", "check the KMS plugin's logs");
    const keyIdProblem = keyIdProblemOf(keyId);
    if (keyIdProblem !== undefined) throw this.#refusal("Encrypt", `Encrypt returned ${keyIdProblem}`, "check the KMS plugin's logs");
    return { ciphertext, keyId, annotations: { ...((response.annotations ?? {}) as Record<string, Buffer>) } };
  }

  async decrypt(ciphertext: Buffer, keyId: string, annotations: Record<string, Buffer>): Promise<Buffer> {
    const response = await this.#call("Decrypt", { ciphertext, key_id: keyId, annotations });
    const plaintext = response.plaintext as Buffer | undefined;
    if (plaintext === undefined || plaintext.length === 0) throw this.#refusal("Decrypt", "Decrypt returned an empty plaintext", "check the KMS plugin's logs");
    return plaintext;
  }

  close(): void {
    this.#client?.close();
  }

  /** "KMS plugin <name> at <endpoint>": how every message about this plugin starts. */
  describe(): string {
    return `KMS plugin ${this.name} at ${this.endpoint.endpoint}`;
  }

  toJSON(): { name: string; endpoint: string } {
    return { name: this.name, endpoint: this.endpoint.endpoint };
  }

  #refusal(call: KmsCall, what: string, hint: string): KmsPluginError {
    return new KmsPluginError(call, true, `${this.describe()}: ${what}`, hint);
  }

  #call(call: KmsCall, request: Record<string, unknown>): Promise<Record<string, unknown>> {
    const client = this.#connection();
    const metadata = new (grpcLibrary().Metadata)();
    // As the API server does: a plugin still starting is waited for, up to the deadline.
    metadata.setOptions({ waitForReady: true });
    const method = (client as unknown as Record<KmsCall, UnaryMethod>)[call];
    return new Promise((resolve, reject) => {
      method.call(client, { ...request, uid: randomUUID() }, metadata, { deadline: Date.now() + this.timeoutMs }, (error, response) => {
        if (error === null && response !== undefined) resolve(response);
        else reject(this.#failure(call, error));
      });
    });
  }

  #failure(call: KmsCall, error: Grpc.ServiceError | null): KmsPluginError {
    const grpc = grpcLibrary();
    const code = error?.code ?? grpc.status.UNKNOWN;
    const answered = !noAnswer(code);
    const missing = this.endpoint.socketPath !== undefined && !answered && !existsSync(this.endpoint.socketPath) ? `; no socket at ${this.endpoint.socketPath}` : "";
    const what = code === grpc.status.DEADLINE_EXCEEDED ? `no answer within ${formatDuration(this.timeoutMs)}` : `${grpc.status[code] ?? code}: ${oneLine(error?.details ?? "no details")}`;
    const hint = answered ? "check the KMS plugin's logs" : `check that the KMS plugin ${this.name} is running and listening on ${this.endpoint.endpoint}, or raise the provider's timeout`;
    return new KmsPluginError(call, answered, `${this.describe()}: ${call} failed: ${what}${missing}`, hint, declining(code));
  }
}

/** Upstream's ValidateKeyID, as words for a message. */
function keyIdProblemOf(keyId: string): string | undefined {
  const bytes = Buffer.byteLength(keyId, "utf8");
  if (bytes === 0) return "an empty key id";
  if (bytes > KEY_ID_MAX_BYTES) return `a key id of ${bytes} bytes, over the ${KEY_ID_MAX_BYTES}-byte limit`;
  return undefined;
}
