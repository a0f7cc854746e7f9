/**
 * `npm run bench`: builds a realistic encrypted table on PostgreSQL and SQLite, then measures, in
 * interleaved rounds, dbcrypt's `rotate` and `status` through the real CLI process against the
 * limits (pure-SQL rewrite, the cipher alone, a bare grouped count) and the peer baseline (Coder's
 * one UPDATE per row in autocommit), with the peak RSS of the dbcrypt process. In the same rounds
 * it rotates an AtelyaOS-shaped secretbox table and an Obot-shaped Kubernetes aesgcm table and
 * measures each one's own cipher limit (issue 10). See docs/performance.md for what each number
 * means and issues 5 and 10 for the targets.
 *
 * Key material never leaves this process except as 0600 files (key files, EncryptionConfiguration
 * files) in a private temp directory that the CLI reads; everything the CLI prints is checked for it.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { execFile } from "node:child_process";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { isAbsolute, join, relative, resolve } from "node:path";
import Database from "better-sqlite3";
import { APP_SHAPES, k8sChunk, messageId, OBOT_RESOURCES, propertyAad, propertyKey, secretboxChunk, workspaceOf, appPlaintext, type AppChunk, type AppScheme } from "./app-dataset.js";
import { K8sAesGcmKey, SecretboxMaster, type Secret } from "./app-keys.js";
import { REPO_ROOT, runCli, snapshotCli, type CliRun, type CliSnapshot } from "./cli.js";
import { makeChunk, sliceChunk, tokenPlaintext } from "./dataset.js";
import { BenchKey } from "./keys.js";
import { LoadMonitor } from "./load.js";
import { machineFacts } from "./machine.js";
import { parseOptions, RSS_PROBE_ROWS, USAGE, type BenchOptions } from "./options.js";
import { latestProfile, summarizeProfile } from "./profile.js";
import { ProtocolWalker, shiftLeft, shiftRight } from "./protocol.js";
import { serverCpuMs as postgresCpuMs } from "./procfs.js";
import { renderText, ratioRows, writeDoc } from "./report.js";
import { newMeasurement, type BenchResults, type Measurement } from "./results.js";
import { formatCount, formatSeconds } from "./stats.js";
import { PostgresAppTarget, SqliteAppTarget, type AppTarget } from "./targets/app-target.js";
import { PostgresTarget, serverFacts } from "./targets/postgres.js";
import { SqliteTarget } from "./targets/sqlite.js";
import type { BenchTarget, Engine, StoredRow } from "./targets/target.js";

const LOAD_CHUNK_ROWS = 10_000;
const execFileAsync = promisify(execFile);

function log(text: string): void {
  process.stderr.write(`[bench] ${text}\n`);
}

/** Every key the run made (of every scheme); CLI output is searched for each of its spellings. */
const allKeys: Secret[] = [];
function freshKey(): BenchKey {
  const key = new BenchKey();
  allKeys.push(key);
  return key;
}
function freshMaster(): SecretboxMaster {
  const key = new SecretboxMaster();
  allKeys.push(key);
  return key;
}
function freshK8sKey(name: string): K8sAesGcmKey {
  const key = new K8sAesGcmKey(name);
  allKeys.push(key);
  return key;
}

function assertNoKeyMaterial(run: CliRun, what: string): void {
  const text = run.stdout + run.stderr;
  for (const key of allKeys) {
    if (key.spellings().some((spelling) => text.includes(spelling))) {
      throw new Error(`${what}: dbcrypt printed key material (output withheld)`);
    }
  }
}

function cliFailure(run: CliRun, what: string): Error {
  assertNoKeyMaterial(run, what);
  return new Error(`${what} exited ${run.code ?? run.signal}:\n${run.stderr.trim()}\n${run.stdout.trim().slice(0, 2000)}`);
}

interface Dataset {
  engine: Engine;
  target: BenchTarget;
  role: "full" | "probe" | "big";
  key: BenchKey;
  /** Fixed plaintext size of every value (big-value tables); tokens of 100-200 bytes otherwise. */
  valueBytes?: number;
}

/** Issue 12's big values: Obot's audit logs keep whole HTTP bodies. */
const BIG_VALUE_SIZES = [4 * 1024, 256 * 1024];
const BIG_LOAD_CHUNK_BYTES = 8 * 1024 * 1024;

/** An issue-10 table and the key its values are under now (k8s keys are named key0, key1, …). */
type AppDataset = { engine: Engine; target: AppTarget; generation: number } & (
  | { scheme: "secretbox"; key: SecretboxMaster }
  | { scheme: "k8s"; key: K8sAesGcmKey }
);

const SCHEME_TITLE: Record<AppScheme, string> = { secretbox: "AtelyaOS secretbox", k8s: "Obot k8s aesgcm" };

class Bench {
  readonly options: BenchOptions;
  readonly work: string;
  readonly keysDir: string;
  readonly seed = (Math.random() * 2 ** 31) | 0;
  readonly datasets: Dataset[] = [];
  readonly measurements = new Map<string, Measurement>();
  /** Big-value cipher samples by plaintext size. */
  readonly bigCipherValues = new Map<number, string[]>();
  readonly cipherFrom = freshKey();
  readonly cipherTo = freshKey();
  readonly appDatasets: AppDataset[] = [];
  /** The secretbox cipher limit's cells and their rows' workspaces. */
  readonly secretboxCipher = { from: freshMaster(), to: freshMaster(), cells: [] as string[], workspaces: [] as string[] };
  /** The k8s cipher limit's cells and their rows' property keys. */
  readonly k8sCipher = { from: freshK8sKey("key0"), to: freshK8sKey("key1"), cells: [] as string[], keys: [] as string[] };
  readonly verification: string[] = [];
  readonly profiles: BenchResults["profiles"] = [];
  readonly load: LoadMonitor;
  readonly cli: CliSnapshot;
  #keyFileCounter = 0;

  constructor(options: BenchOptions, load: LoadMonitor) {
    this.options = options;
    this.load = load;
    this.work = mkdtempSync(join(tmpdir(), "dbcrypt-bench-"));
    this.keysDir = join(this.work, "keys");
    mkdirSync(this.keysDir, { mode: 0o700 });
    this.runDir = join(this.work, "run");
    mkdirSync(this.runDir);
    try {
      this.cli = snapshotCli(join(this.work, "cli"), options.cliRef);
    } catch (error) {
      rmSync(this.work, { recursive: true, force: true });
      throw error;
    }
  }

  /** The CLI runs here: an empty directory, so no dbcrypt.config.json is picked up. */
  readonly runDir: string;

  async cliRun(args: string[], nodeFlags: string[] = []): Promise<CliRun> {
    return runCli(this.cli.path, args, { cwd: this.runDir, nodeFlags });
  }

  measurement(fields: Parameters<typeof newMeasurement>[0]): Measurement {
    let measurement = this.measurements.get(fields.id);
    if (measurement === undefined) {
      measurement = newMeasurement(fields);
      this.measurements.set(fields.id, measurement);
    }
    return measurement;
  }

  async build(): Promise<void> {
    if (this.options.schemes.includes("coder")) await this.buildCoder();
    if (this.options.bigRows > 0) await this.buildBig();
    for (const scheme of this.options.schemes) if (scheme !== "coder") await this.buildApp(scheme);
  }

  async buildCoder(): Promise<void> {
    const { rows, engines } = this.options;
    const initial = freshKey();
    for (const engine of engines) {
      const sizes: [Dataset["role"], number][] = [["full", rows]];
      if (rows > RSS_PROBE_ROWS) sizes.push(["probe", RSS_PROBE_ROWS]);
      for (const [role, size] of sizes) {
        const pgName = role === "full" ? this.options.pgDatabase : `${this.options.pgDatabase}_${size / 1000}k`;
        if (engine === "postgres") this.load.ownDatabases.push(pgName);
        const target = engine === "postgres"
          ? await PostgresTarget.create(this.options.adminUrl, pgName, size)
          : new SqliteTarget(join(this.work, role === "full" ? "bench.db" : `bench-${size / 1000}k.db`), size);
        this.datasets.push({ engine, target, role, key: initial });
        await target.createSchema(initial);
      }
    }
    const started = performance.now();
    log(`building ${rows.toLocaleString("en-US")} rows on ${engines.join(" and ")} (tokens of 100-200 bytes sealed in Node, batches of ${LOAD_CHUNK_ROWS.toLocaleString("en-US")})`);
    // Generation of the next chunk overlaps PostgreSQL's insert of the previous one.
    let pending: Promise<unknown> = Promise.resolve();
    for (let first = 1; first <= rows; first += LOAD_CHUNK_ROWS) {
      const chunk = makeChunk(this.seed, first, Math.min(LOAD_CHUNK_ROWS, rows - first + 1), initial);
      await pending;
      const inserts: Promise<void>[] = [];
      for (const { target } of this.datasets) {
        if (first > target.rows) continue;
        const part = first + chunk.ids.length - 1 > target.rows ? sliceChunk(chunk, target.rows - first + 1) : chunk;
        inserts.push(target.insertChunk(part));
      }
      pending = Promise.all(inserts);
      if ((first - 1) % 200_000 === 0 && first > 1) log(`  ${(first - 1).toLocaleString("en-US")} rows`);
    }
    await pending;
    for (const { target } of this.datasets) await target.finishLoad();
    log(`built in ${formatSeconds(performance.now() - started)} s`);
  }

  /**
   * The big-value tables: the Coder table's shape with every token a fixed 4 KiB or 256 KiB, sealed
   * once in Node and inserted in chunks of about 8 MB; and for each size the cipher limit's sample.
   */
  async buildBig(): Promise<void> {
    for (const valueBytes of BIG_VALUE_SIZES) {
      const rows = Math.max(4, Math.round((this.options.bigRows * BIG_VALUE_SIZES[0]!) / valueBytes));
      const initial = freshKey();
      const started = performance.now();
      log(`building ${rows.toLocaleString("en-US")} rows of ${valueBytes / 1024} KiB values on ${this.options.engines.join(" and ")}`);
      const mine: Dataset[] = [];
      for (const engine of this.options.engines) {
        const name = `${this.options.pgDatabase}_big${valueBytes / 1024}k`;
        if (engine === "postgres") this.load.ownDatabases.push(name);
        const target = engine === "postgres" ? await PostgresTarget.create(this.options.adminUrl, name, rows) : new SqliteTarget(join(this.work, `big-${valueBytes / 1024}k.db`), rows);
        await target.createSchema(initial);
        const dataset: Dataset = { engine, target, role: "big", key: initial, valueBytes };
        this.datasets.push(dataset);
        mine.push(dataset);
      }
      const chunkRows = Math.max(1, Math.floor(BIG_LOAD_CHUNK_BYTES / valueBytes));
      for (let first = 1; first <= rows; first += chunkRows) {
        const chunk = makeChunk(this.seed, first, Math.min(chunkRows, rows - first + 1), initial, valueBytes);
        await Promise.all(mine.map(({ target }) => target.insertChunk(chunk)));
      }
      for (const { target } of mine) await target.finishLoad();
      const sample: string[] = [];
      const sampleRows = Math.max(4, Math.floor((64 * 1024 * 1024) / valueBytes));
      for (let id = 1; id <= sampleRows; id++) sample.push(this.cipherFrom.seal(tokenPlaintext(this.seed, id, valueBytes)));
      this.bigCipherValues.set(valueBytes, sample);
      log(`built in ${formatSeconds(performance.now() - started)} s`);
    }
  }

  /** Big values: rotate through the CLI, reported per row and, in the report, in MB/s of plaintext. */
  async taskBigRotate(dataset: Dataset, round: number): Promise<Measurement[]> {
    const size = dataset.valueBytes as number;
    const measurement = this.measurement({
      id: `${dataset.engine}:rotate-big-${size}`,
      engine: dataset.engine,
      label: `dbcrypt rotate, CLI: ${size / 1024} KiB values`,
      kind: "dbcrypt",
      rows: dataset.target.rows,
      note: `${dataset.target.rows.toLocaleString("en-US")} rows of ${size / 1024} KiB; batches bounded by --batch-bytes (default 1 MiB)`,
    });
    await dataset.target.settle();
    this.recordRotate(measurement, round, await this.rotate(dataset, freshKey()));
    return [measurement];
  }

  /** The cipher limit on big values: decrypt + encrypt of the same size in memory on one core. */
  async taskBigCipher(size: number, round: number): Promise<Measurement[]> {
    const values = this.bigCipherValues.get(size) ?? [];
    const measurement = this.measurement({
      id: `cipher-big-${size}`,
      engine: "any",
      label: `limit: cipher alone, ${size / 1024} KiB values (decrypt + encrypt)`,
      kind: "limit",
      rows: values.length,
      note: "node:crypto AES-256-GCM + base64, 1 core, no database",
    });
    let checksum = 0;
    for (const value of values.slice(0, 4)) checksum += this.cipherTo.seal(this.cipherFrom.open(value)).length; // warm the JIT
    const started = performance.now();
    for (const value of values) checksum += this.cipherTo.seal(this.cipherFrom.open(value)).length;
    measurement.ms[round] = performance.now() - started;
    if (checksum === 0) throw new Error("big-value cipher limit did no work");
    this.report(measurement, round);
    return [measurement];
  }

  /** An issue-10 table on every engine, sealed once in Node and inserted into each; then `dbcrypt keys init`. */
  async buildApp(scheme: AppScheme): Promise<void> {
    const { schemeRows: rows, engines } = this.options;
    const shape = APP_SHAPES[scheme];
    const mine: AppDataset[] = [];
    const initial = scheme === "secretbox" ? freshMaster() : freshK8sKey("key0");
    for (const engine of engines) {
      const pgName = `${this.options.pgDatabase}_${shape.preset}`;
      if (engine === "postgres") this.load.ownDatabases.push(pgName);
      const target = engine === "postgres"
        ? await PostgresAppTarget.create(this.options.adminUrl, pgName, shape, rows)
        : new SqliteAppTarget(join(this.work, `${shape.preset}.db`), shape, rows);
      const dataset: AppDataset = initial instanceof SecretboxMaster
        ? { engine, target, generation: 0, scheme: "secretbox", key: initial }
        : { engine, target, generation: 0, scheme: "k8s", key: initial };
      this.appDatasets.push(dataset);
      mine.push(dataset);
      await target.createSchema();
    }
    const started = performance.now();
    log(`building ${rows.toLocaleString("en-US")} rows of ${shape.table} (${SCHEME_TITLE[scheme]}, --preset ${shape.preset}) on ${engines.join(" and ")}`);
    const chunkOf = (first: number, count: number): AppChunk =>
      initial instanceof SecretboxMaster ? secretboxChunk(this.seed, first, count, initial) : k8sChunk(this.seed, first, count, initial);
    let pending: Promise<unknown> = Promise.resolve();
    for (let first = 1; first <= rows; first += LOAD_CHUNK_ROWS) {
      const chunk = chunkOf(first, Math.min(LOAD_CHUNK_ROWS, rows - first + 1));
      await pending;
      pending = Promise.all(mine.map(({ target }) => target.insertChunk(chunk)));
    }
    await pending;
    for (const { target } of mine) {
      await target.finishLoad();
      const run = await this.cliRun(["keys", "init", "--db", target.dbArg, "--preset", shape.preset]);
      if (run.code !== 0) throw cliFailure(run, `dbcrypt keys init --preset ${shape.preset} on ${target.engine}`);
      assertNoKeyMaterial(run, `dbcrypt keys init on ${target.engine}`);
    }
    // The cipher limit's cells: the same kind of values, sealed the same way, under keys of their own.
    const sample = Math.min(this.options.cipherSample, rows);
    for (let first = 1; first <= sample; first += LOAD_CHUNK_ROWS) {
      const count = Math.min(LOAD_CHUNK_ROWS, sample - first + 1);
      if (scheme === "secretbox") {
        const chunk = secretboxChunk(this.seed, first, count, this.secretboxCipher.from);
        this.secretboxCipher.workspaces.push(...(chunk.columns[1] as string[]));
        this.secretboxCipher.cells.push(...(chunk.columns[3] as string[]));
      } else {
        const chunk = k8sChunk(this.seed, first, count, this.k8sCipher.from);
        this.k8sCipher.keys.push(...(chunk.columns[0] as string[]));
        this.k8sCipher.cells.push(...(chunk.columns[2] as string[]));
      }
    }
    log(`built in ${formatSeconds(performance.now() - started)} s`);
  }

  keyFile(keys: BenchKey[]): string {
    return BenchKey.writeFile(this.keysDir, `k${++this.#keyFileCounter}.keys`, keys);
  }

  async rotate(dataset: Dataset, newKey: BenchKey, nodeFlags: string[] = this.options.rotateNodeFlags): Promise<CliRun> {
    const newPath = this.keyFile([newKey]);
    const oldPath = this.keyFile([dataset.key]);
    try {
      const args = ["rotate", "--db", dataset.target.dbArg, "--new-key", `@${newPath}`, "--old-keys", `@${oldPath}`, "--yes", "--json", "--batch-size", String(this.options.batchSize), ...this.options.rotateArgs];
      const run = await this.cliRun(args, nodeFlags);
      const what = `dbcrypt rotate on ${dataset.engine} (${dataset.target.rows} rows)`;
      if (run.code !== 0) throw cliFailure(run, what);
      assertNoKeyMaterial(run, what);
      const result = JSON.parse(run.stdout) as { status: string; valuesWritten: number; keysRevoked: string[] };
      if (result.status !== "done" || result.valuesWritten !== dataset.target.rows || !result.keysRevoked.includes(dataset.key.id)) {
        throw new Error(`${what}: unexpected result: status ${result.status}, ${result.valuesWritten} values written, revoked ${result.keysRevoked.length} key(s)`);
      }
      dataset.key = newKey;
      return run;
    } finally {
      rmSync(newPath, { force: true });
      rmSync(oldPath, { force: true });
    }
  }

  /**
   * One issue-10 rotate through the CLI: AtelyaOS with `--preset atelyaos --new-key @FILE
   * --old-keys @FILE`; Obot with `--preset obot --encryption-config OLD.yaml
   * --new-encryption-config NEW.yaml`, NEW listing the next key first and the current one after it
   * (as an operator stages a Kubernetes key rotation). Key names are never reused: a revoked key id
   * cannot come back.
   */
  async rotateApp(dataset: AppDataset, nodeFlags: string[] = this.options.rotateNodeFlags): Promise<CliRun> {
    const { target } = dataset;
    const files: string[] = [];
    let args: string[];
    let next: SecretboxMaster | K8sAesGcmKey;
    if (dataset.scheme === "secretbox") {
      const newKey = freshMaster();
      next = newKey;
      files.push(newKey.writeFile(this.keysDir, `k${++this.#keyFileCounter}.key`), dataset.key.writeFile(this.keysDir, `k${++this.#keyFileCounter}.key`));
      args = ["--new-key", `@${files[0]}`, "--old-keys", `@${files[1]}`];
    } else {
      const newKey = freshK8sKey(`key${dataset.generation + 1}`);
      next = newKey;
      files.push(
        K8sAesGcmKey.writeConfig(this.keysDir, `c${++this.#keyFileCounter}-old.yaml`, OBOT_RESOURCES, [dataset.key]),
        K8sAesGcmKey.writeConfig(this.keysDir, `c${++this.#keyFileCounter}-new.yaml`, OBOT_RESOURCES, [newKey, dataset.key]),
      );
      args = ["--encryption-config", files[0] as string, "--new-encryption-config", files[1] as string];
    }
    try {
      const run = await this.cliRun(["rotate", "--db", target.dbArg, "--preset", target.shape.preset, ...args, "--yes", "--json", "--batch-size", String(this.options.batchSize), ...this.options.rotateArgs], nodeFlags);
      const what = `dbcrypt rotate --preset ${target.shape.preset} on ${dataset.engine} (${target.rows} rows)`;
      if (run.code !== 0) throw cliFailure(run, what);
      assertNoKeyMaterial(run, what);
      const result = JSON.parse(run.stdout) as { status: string; valuesWritten: number; keysRevoked: string[] };
      if (result.status !== "done" || result.valuesWritten !== target.rows || !result.keysRevoked.includes(dataset.key.id)) {
        throw new Error(`${what}: unexpected result: status ${result.status}, ${result.valuesWritten} values written, revoked ${result.keysRevoked.length} key(s)`);
      }
      if (dataset.scheme === "secretbox") dataset.key = next as SecretboxMaster;
      else dataset.key = next as K8sAesGcmKey;
      dataset.generation++;
      return run;
    } finally {
      for (const file of files) rmSync(file, { force: true });
    }
  }

  async taskAppRotate(dataset: AppDataset, round: number): Promise<Measurement[]> {
    const { engine, target, scheme } = dataset;
    const measurement = this.measurement({
      id: `${engine}:rotate:${scheme}`,
      engine,
      scheme,
      label: `dbcrypt rotate, CLI: ${SCHEME_TITLE[scheme]}`,
      kind: "dbcrypt",
      rows: target.rows,
      note: `${target.shape.table}, --preset ${target.shape.preset}; whole process as above`,
    });
    await target.settle();
    this.recordRotate(measurement, round, await this.rotateApp(dataset));
    return [measurement];
  }

  /** The issue-10 schemes' cipher limits: decrypt + encrypt of the same kind of cells in memory on one core. */
  async taskAppCipher(scheme: AppScheme, round: number): Promise<Measurement[]> {
    const secretbox = scheme === "secretbox";
    const cells = secretbox ? this.secretboxCipher.cells : this.k8sCipher.cells;
    const measurement = this.measurement({
      id: `cipher:${scheme}`,
      engine: "any",
      scheme,
      label: `limit: cipher alone, ${SCHEME_TITLE[scheme]} (decrypt + encrypt)`,
      kind: "limit",
      rows: cells.length,
      note: secretbox
        ? `@noble/ciphers xsalsa20poly1305 + HMAC-SHA256 workspace keys (cached per workspace) + base64, pooled nonces, 1 core, no database`
        : `node:crypto AES-256-GCM with per-row AAD + k8s:enc prefix + base64, pooled nonces, 1 core, no database`,
    });
    const context = secretbox ? this.secretboxCipher.workspaces : this.k8sCipher.keys;
    const pass = (values: string[], contexts: string[]): number => {
      if (secretbox) return SecretboxMaster.rewriteLimit(this.secretboxCipher.from, this.secretboxCipher.to, values, contexts);
      return K8sAesGcmKey.rewriteLimit(this.k8sCipher.from, this.k8sCipher.to, values, (index) => propertyAad(contexts[index] as string));
    };
    pass(cells.slice(0, 2_000), context.slice(0, 2_000)); // warm the JIT
    const started = performance.now();
    const checksum = pass(cells, context);
    measurement.ms[round] = performance.now() - started;
    if (checksum === 0) throw new Error(`${scheme} cipher limit did no work`);
    this.report(measurement, round);
    return [measurement];
  }

  /** dbcrypt rotate K_i -> K_i+1 through the CLI, after settling the database. */
  async taskRotate(dataset: Dataset, round: number): Promise<Measurement[]> {
    const probe = dataset.role === "probe";
    const measurement = this.measurement({
      id: `${dataset.engine}:${probe ? "rotate-probe" : "rotate"}`,
      engine: dataset.engine,
      label: probe ? `dbcrypt rotate, CLI (${dataset.target.rows.toLocaleString("en-US")}-row db)` : "dbcrypt rotate, CLI",
      kind: "dbcrypt",
      rows: dataset.target.rows,
      note: probe ? "for peak RSS at 100k" : "whole process: start-up, preflight census, batches, revoke",
    });
    await dataset.target.settle();
    const serverBefore = this.serverCpuMs();
    const run = await this.rotate(dataset, freshKey());
    this.recordRotate(measurement, round, run);
    (measurement.serverCpuMs ??= [])[round] = dataset.engine === "postgres" ? this.serverCpuMs() - serverBefore : undefined;
    return [measurement];
  }

  /** CPU of the local PostgreSQL (postmaster, backends, background processes), ms: a difference of two readings is what the server spent. */
  serverCpuMs(): number {
    return postgresCpuMs(this.load.postmasterPid, this.load.ownDatabases);
  }

  /**
   * The protocol limit: dbcrypt's own batch reads and writes of the Coder table with no crypto
   * (bench/protocol.ts), two passes that change every value and then restore it. Client CPU is
   * this process's; server CPU is the local PostgreSQL's during the passes.
   */
  async taskProtocol(dataset: Dataset, round: number): Promise<Measurement[]> {
    const { target, engine } = dataset;
    const measurement = this.measurement({
      id: `${engine}:protocol`,
      engine,
      label: "limit: protocol (dbcrypt's batch reads and writes, no crypto)",
      kind: "limit",
      rows: 2 * target.rows,
      note: `the CLI's dialect code and statements, ${this.options.batchSize} rows per batch, next batch read while one is written; 2 passes (every value changed under another key id, then restored)`,
    });
    await target.settle();
    const detour = freshKey();
    await target.insertKeyRow(detour);
    const walker = await ProtocolWalker.open(this.cli.path, target.dbArg, "oauth_tokens");
    try {
      let ms = 0;
      let clientMs = 0;
      let serverMs = 0;
      // Each pass starts from a settled table, as every rotate does: the second pass must pay for
      // its full-page writes after a checkpoint too, or it would flatter the limit.
      for (const [index, [notUnder, keyId, change]] of ([[detour.id, detour.id, shiftLeft], [dataset.key.id, dataset.key.id, shiftRight]] as const).entries()) {
        if (index > 0) await target.settle();
        const serverBefore = this.serverCpuMs();
        const clientBefore = process.cpuUsage();
        const pass = await walker.pass(notUnder, keyId, this.options.batchSize, change);
        const client = process.cpuUsage(clientBefore);
        const passClientMs = (client.user + client.system) / 1000;
        if (pass.rows !== target.rows) throw new Error(`protocol limit on ${engine} rewrote ${pass.rows} rows in pass ${index + 1}, expected ${target.rows}`);
        ms += pass.ms;
        clientMs += passClientMs;
        serverMs += this.serverCpuMs() - serverBefore;
      }
      measurement.ms[round] = ms;
      measurement.cpuMs[round] = clientMs;
      (measurement.serverCpuMs ??= [])[round] = engine === "postgres" ? serverMs : undefined;
    } finally {
      await walker.close();
      // After a failed pass rows may still reference the detour key: keep the first error.
      await target.deleteKeyRow(detour.id).catch((error: unknown) => log(`protocol limit: could not remove the detour key row: ${(error as Error).message}`));
    }
    this.report(measurement, round);
    return [measurement];
  }

  /**
   * The Coder table rotated by `count` processes at once, process I with `--partition I/count`
   * (issue 12): wall time from the first start to the last exit, every value written once in all,
   * and the old key revoked by exactly one of them.
   */
  async taskPartitioned(dataset: Dataset, round: number, count: number): Promise<Measurement[]> {
    const measurement = this.measurement({
      id: `${dataset.engine}:rotate-parts-${count}`,
      engine: dataset.engine,
      label: `dbcrypt rotate, ${count} processes (--partition I/${count})`,
      kind: "dbcrypt",
      rows: dataset.target.rows,
      note: "wall time from the first start to the last exit; peak RSS is the largest process's",
    });
    await dataset.target.settle();
    const newKey = freshKey();
    const newPath = this.keyFile([newKey]);
    const oldPath = this.keyFile([dataset.key]);
    const what = `dbcrypt rotate --partition I/${count} on ${dataset.engine} (${dataset.target.rows} rows)`;
    try {
      const started = performance.now();
      const runs = await Promise.all(Array.from({ length: count }, (_, index) =>
        this.cliRun(["rotate", "--db", dataset.target.dbArg, "--new-key", `@${newPath}`, "--old-keys", `@${oldPath}`, "--yes", "--json", "--batch-size", String(this.options.batchSize), "--partition", `${index}/${count}`, ...this.options.rotateArgs], this.options.rotateNodeFlags)));
      measurement.ms[round] = performance.now() - started;
      let written = 0;
      let revoked = 0;
      for (const run of runs) {
        if (run.code !== 0) throw cliFailure(run, what);
        assertNoKeyMaterial(run, what);
        const result = JSON.parse(run.stdout) as { status: string; valuesWritten: number; keysRevoked: string[] };
        if (result.status !== "done") throw new Error(`${what}: a part ended ${result.status}`);
        written += result.valuesWritten;
        if (result.keysRevoked.includes(dataset.key.id)) revoked++;
      }
      if (written !== dataset.target.rows || revoked !== 1) throw new Error(`${what}: ${written} values written in all (expected ${dataset.target.rows}), old key revoked by ${revoked} part(s)`);
      const peaks = runs.map((run) => run.peakRssKiB).filter((kib): kib is number => kib !== undefined);
      measurement.rssKiB[round] = peaks.length === 0 ? undefined : Math.max(...peaks);
      measurement.cpuMs[round] = runs.reduce((sum, run) => sum + (run.cpuMs ?? 0), 0);
      dataset.key = newKey;
      this.report(measurement, round);
      return [measurement];
    } finally {
      rmSync(newPath, { force: true });
      rmSync(oldPath, { force: true });
    }
  }

  /** One rotate's wall time, memory and CPU into its round of the measurement. */
  recordRotate(measurement: Measurement, round: number, run: CliRun): void {
    measurement.ms[round] = run.wallMs;
    measurement.rssKiB[round] = run.peakRssKiB;
    measurement.rssAnonKiB[round] = run.largestRss?.anon;
    measurement.rssFileKiB[round] = run.largestRss === undefined ? undefined : run.largestRss.file + run.largestRss.shmem;
    measurement.cpuMs[round] = run.cpuMs;
    measurement.machineCores[round] = run.machineCores;
    this.report(measurement, round, `peak RSS ${run.peakRssKiB === undefined ? "?" : Math.round(run.peakRssKiB / 1024)} MB`);
  }

  /** dbcrypt status (census) through the CLI, paired with the bare grouped count; order alternates per round. */
  async taskCensus(dataset: Dataset, round: number): Promise<Measurement[]> {
    const { target, engine } = dataset;
    const status = this.measurement({ id: `${engine}:status`, engine, label: "dbcrypt status, CLI (census)", kind: "dbcrypt", rows: target.rows, note: "whole process" });
    const count = this.measurement({ id: `${engine}:count`, engine, label: "limit: bare grouped count", kind: "limit", rows: target.rows, note: "SELECT token_key_id, count(*) … GROUP BY 1, in-process" });
    await target.settle();
    const runStatus = async () => {
      const run = await this.cliRun(["status", "--db", target.dbArg, "--json"]);
      if (run.code !== 0) throw cliFailure(run, `dbcrypt status on ${engine}`);
      assertNoKeyMaterial(run, `dbcrypt status on ${engine}`);
      const report = JSON.parse(run.stdout) as { columns: { column: string; encrypted: Record<string, number> }[] };
      const counted = report.columns.reduce((sum, column) => sum + (column.encrypted[dataset.key.id] ?? 0), 0);
      if (counted !== target.rows) throw new Error(`dbcrypt status on ${engine}: counted ${counted} values under the current key, expected ${target.rows}`);
      status.ms[round] = run.wallMs;
      this.report(status, round);
    };
    const runCount = async () => {
      const started = performance.now();
      const groups = await target.groupedCount();
      count.ms[round] = performance.now() - started;
      if (groups.get(dataset.key.id) !== target.rows) throw new Error(`grouped count on ${engine} disagrees with the expected ${target.rows} rows`);
      this.report(count, round);
    };
    if (round % 2 === 0) {
      await runStatus();
      await runCount();
    } else {
      await runCount();
      await runStatus();
    }
    return [status, count];
  }

  /** UPDATE … SET token = token || '' by primary-key ranges of the same batch size: the database's write limit. */
  async taskRewrite(dataset: Dataset, round: number): Promise<Measurement[]> {
    const { target, engine } = dataset;
    const measurement = this.measurement({
      id: `${engine}:rewrite`,
      engine,
      label: "limit: pure-SQL rewrite",
      kind: "limit",
      rows: target.rows,
      note: `UPDATE … SET token = token || '' WHERE id > lo AND id <= hi, ${this.options.batchSize} rows per transaction${engine === "sqlite" ? ", in-process" : ""}`,
    });
    await target.settle();
    const started = performance.now();
    const changed = await target.rewriteRanges(this.options.batchSize);
    measurement.ms[round] = performance.now() - started;
    if (changed !== target.rows) throw new Error(`pure-SQL rewrite on ${engine} changed ${changed} rows, expected ${target.rows}`);
    this.report(measurement, round);
    return [measurement];
  }

  /**
   * Coder's shape: read rows, decrypt with the old key, encrypt with a new one, one UPDATE per row in
   * autocommit. Timed on a sample under a throwaway key that is inserted for it; the sample rows
   * are then put back exactly as they were and the key row removed (untimed).
   */
  async taskPeer(dataset: Dataset, round: number): Promise<Measurement[]> {
    const { target, engine } = dataset;
    const sample = Math.min(this.options.peerSample, target.rows);
    const measurement = this.measurement({
      id: `${engine}:peer`,
      engine,
      label: "peer: Coder-style, one UPDATE per row (autocommit)",
      kind: "peer",
      rows: sample,
      note: `${sample.toLocaleString("en-US")}-row sample per round, rate extrapolated${engine === "sqlite" ? ", in-process" : ""}`,
    });
    await target.settle();
    const peerKey = freshKey();
    await target.insertKeyRow(peerKey);
    const start = Math.floor(((round * 0.37 + 0.25) % 1) * Math.max(0, target.rows - sample));
    const original: StoredRow[] = [];
    try {
      const started = performance.now();
      let after = start;
      while (original.length < sample) {
        const page = await target.readPage(after, Math.min(this.options.batchSize, sample - original.length));
        if (page.length === 0) break;
        for (const row of page) {
          const plaintext = dataset.key.open(row.token);
          await target.updateOne(row.id, peerKey.seal(plaintext), peerKey.id);
          original.push(row);
        }
        after = (page[page.length - 1] as StoredRow).id;
      }
      measurement.ms[round] = performance.now() - started;
    } finally {
      await target.restore(original);
      await target.deleteKeyRow(peerKey.id);
    }
    if (original.length !== sample) throw new Error(`peer on ${engine} rotated ${original.length} rows, expected ${sample}`);
    this.report(measurement, round);
    return [measurement];
  }

  /**
   * Decrypt + encrypt of the same kind of values in memory on one core: the cipher limit, timed in
   * a fresh process (bench/cipher-child.ts) so that this process's large heap does not slow it.
   */
  async taskCipher(round: number): Promise<Measurement[]> {
    const measurement = this.measurement({
      id: "cipher",
      engine: "any",
      label: "limit: cipher alone (decrypt + encrypt)",
      kind: "limit",
      rows: this.options.cipherSample,
      note: "node:crypto AES-256-GCM + base64, pooled nonces, 1 core, no database, in a process of its own",
    });
    const child = fileURLToPath(new URL("./cipher-child.js", import.meta.url));
    const { stdout } = await execFileAsync(process.execPath, [child, String(this.options.cipherSample), String(this.seed)]);
    const result = JSON.parse(stdout) as { ms: number; values: number };
    if (result.values !== this.options.cipherSample) throw new Error(`cipher limit opened ${result.values} values, expected ${this.options.cipherSample}`);
    measurement.ms[round] = result.ms;
    this.report(measurement, round);
    return [measurement];
  }

  /** What every CLI run pays before touching a database: node start-up and dbcrypt's imports. */
  async taskFloor(round: number): Promise<Measurement[]> {
    const measurement = this.measurement({ id: "floor", engine: "any", label: "CLI start-up floor (`dbcrypt --version`)", kind: "info", rows: 1, note: "process start, module load, exit (rows/s meaningless)" });
    const run = await this.cliRun(["--version"]);
    if (run.code !== 0) throw cliFailure(run, "dbcrypt --version");
    measurement.ms[round] = run.wallMs;
    log(`  round ${round + 1}: CLI start-up floor ${formatSeconds(run.wallMs)} s`);
    return [measurement];
  }

  /**
   * Runs one task after waiting for a quiet machine, measures the load other processes put on it
   * meanwhile, and runs it again (up to --attempts) when that load was above --max-other-load.
   */
  async runTask(round: number, task: () => Promise<Measurement[]>): Promise<void> {
    const { attempts, maxOtherLoad, quietTimeoutMs } = this.options;
    for (let attempt = 1; ; attempt++) {
      if (quietTimeoutMs > 0) {
        const quiet = await this.load.waitForQuiet(maxOtherLoad / 2, quietTimeoutMs);
        if (quiet.waitedMs > 1_000) log(`  waited ${formatSeconds(quiet.waitedMs)} s for other processes to quieten (now ${quiet.foreign.toFixed(2)} cores)`);
      }
      const before = this.load.snapshot();
      const touched = await task();
      // /proc counts CPU in 10 ms ticks: judge the load over at least 300 ms, padding short samples.
      const short = 300 - (performance.now() - before.at);
      if (short > 0) await new Promise((resolve) => setTimeout(resolve, short));
      const other = this.load.foreignCores(before, this.load.snapshot());
      for (const measurement of touched) measurement.otherLoad[round] = other;
      if (other <= maxOtherLoad) return;
      if (attempt >= attempts) {
        log(`  kept a sample disturbed by ${other.toFixed(2)} cores of other processes' load (after ${attempt} attempt(s))`);
        return;
      }
      for (const measurement of touched) measurement.retries++;
      log(`  other processes used ${other.toFixed(2)} cores during that sample; measuring it again`);
    }
  }

  report(measurement: Measurement, round: number, extra = ""): void {
    const ms = measurement.ms[round];
    if (ms === undefined) return;
    const rate = (measurement.rows * 1000) / ms;
    log(`  round ${round + 1}: ${measurement.engine === "any" ? "" : `${measurement.engine} `}${measurement.label}: ${formatCount(rate)} rows/s (${formatSeconds(ms)} s)${extra ? `, ${extra}` : ""}`);
  }

  async rounds(): Promise<void> {
    for (let round = 0; round < this.options.rounds; round++) {
      log(`round ${round + 1}/${this.options.rounds}`);
      const tasks: (() => Promise<Measurement[]>)[] = [];
      for (const engine of this.options.engines) {
        const full = this.datasets.find((dataset) => dataset.engine === engine && dataset.role === "full");
        const probe = this.datasets.find((dataset) => dataset.engine === engine && dataset.role === "probe");
        if (full) {
          tasks.push(() => this.taskRotate(full, round));
          for (const count of this.options.partitions) tasks.push(() => this.taskPartitioned(full, round, count));
          if (probe) tasks.push(() => this.taskRotate(probe, round));
          tasks.push(() => this.taskCensus(full, round));
          tasks.push(() => this.taskRewrite(full, round));
          tasks.push(() => this.taskProtocol(full, round));
          tasks.push(() => this.taskPeer(full, round));
        }
        for (const dataset of this.appDatasets.filter((candidate) => candidate.engine === engine)) tasks.push(() => this.taskAppRotate(dataset, round));
        for (const dataset of this.datasets.filter((candidate) => candidate.engine === engine && candidate.role === "big")) tasks.push(() => this.taskBigRotate(dataset, round));
      }
      for (const size of this.bigCipherValues.keys()) tasks.push(() => this.taskBigCipher(size, round));
      if (this.options.schemes.includes("coder")) tasks.push(() => this.taskCipher(round));
      for (const scheme of this.options.schemes) if (scheme !== "coder") tasks.push(() => this.taskAppCipher(scheme, round));
      tasks.push(() => this.taskFloor(round));
      // Interleave: each round starts at a different task, so no measurement always runs first.
      const shift = (round * 3) % tasks.length;
      for (const task of [...tasks.slice(shift), ...tasks.slice(0, shift)]) await this.runTask(round, task);
    }
  }

  async profile(): Promise<void> {
    for (const dataset of this.datasets.filter((candidate) => candidate.role === "full")) {
      const dir = join(this.work, `profile-${dataset.engine}`);
      mkdirSync(dir);
      await dataset.target.settle();
      if (this.options.quietTimeoutMs > 0) await this.load.waitForQuiet(this.options.maxOtherLoad / 2, this.options.quietTimeoutMs);
      log(`profiling one ${dataset.engine} rotate under node --cpu-prof`);
      const run = await this.rotate(dataset, freshKey(), [...this.options.rotateNodeFlags, "--cpu-prof", `--cpu-prof-dir=${dir}`]);
      const file = latestProfile(dir);
      if (file === undefined) throw new Error("node --cpu-prof wrote no profile");
      const kept = join(REPO_ROOT, "bench", "results", `rotate-${dataset.engine}-${dataset.target.rows}.cpuprofile`);
      mkdirSync(join(REPO_ROOT, "bench", "results"), { recursive: true });
      copyFileSync(file, kept);
      this.profiles.push({ engine: dataset.engine, rows: dataset.target.rows, wallMs: run.wallMs, summary: summarizeProfile(file), file: relative(REPO_ROOT, kept) });
    }
  }

  /** Untimed: every row still decrypts, under the last key, to the token it was built with. */
  async verify(): Promise<void> {
    for (const dataset of this.datasets) {
      const { target } = dataset;
      const ids = new Set<number>();
      for (let index = 0; index < 40; index++) ids.add(1 + Math.floor((index / 40) * target.rows));
      ids.add(target.rows);
      const rows = await target.fetch([...ids]);
      let bad = rows.length === ids.size ? 0 : ids.size - rows.length;
      for (const row of rows) {
        if (row.keyId !== dataset.key.id) bad++;
        else if (!dataset.key.open(row.token).equals(tokenPlaintext(this.seed, row.id, dataset.valueBytes))) bad++;
      }
      const groups = await target.groupedCount();
      const underCurrent = groups.get(dataset.key.id) ?? 0;
      if (bad > 0 || underCurrent !== target.rows || groups.size !== 1) {
        throw new Error(`${dataset.engine} (${target.rows} rows): data check failed: ${bad} bad sample row(s), ${underCurrent} rows under the last key, ${groups.size} key id group(s)`);
      }
      this.verification.push(`${dataset.engine}, ${target.rows.toLocaleString("en-US")} rows: all rows under the last key; ${rows.length} sampled rows decrypt to the tokens they were built with`);
    }
    for (const dataset of this.appDatasets) await this.verifyApp(dataset);
  }

  /**
   * Untimed, with the bench's own crypto: sampled rows open under the last key (for their workspace,
   * or with their additional data) to the plaintext they were built with, no row was lost, no value
   * was emptied, and (Obot) every row is still flagged encrypted.
   */
  async verifyApp(dataset: AppDataset): Promise<void> {
    const { target, engine, scheme } = dataset;
    const { shape } = target;
    const ids = new Set<number>();
    for (let index = 0; index < 40; index++) ids.add(1 + Math.floor((index / 40) * target.rows));
    ids.add(target.rows);
    const keyOf = (id: number) => (scheme === "secretbox" ? messageId(id) : propertyKey(id));
    const idOf = new Map([...ids].map((id) => [keyOf(id), id]));
    const rows = await target.fetch([...idOf.keys()]);
    let bad = ids.size - rows.length;
    for (const row of rows) {
      const id = idOf.get(String(row[shape.keyColumn]));
      const cell = row[shape.valueColumn];
      if (id === undefined || typeof cell !== "string") {
        bad++;
        continue;
      }
      const opened = dataset.scheme === "secretbox"
        ? (String(row.workspace_id) === workspaceOf(this.seed, id) ? dataset.key.open(cell, workspaceOf(this.seed, id)) : undefined)
        : dataset.key.open(cell, propertyAad(keyOf(id)));
      if (opened === undefined || !opened.equals(appPlaintext(this.seed, scheme, id))) bad++;
    }
    const total = await target.count();
    const withValue = await target.count(`${shape.valueColumn} IS NOT NULL AND ${shape.valueColumn} <> ''`);
    const flagged = scheme === "k8s" ? await target.count("encrypted") : total;
    if (bad > 0 || total !== target.rows || withValue !== target.rows || flagged !== target.rows) {
      throw new Error(`${engine} ${shape.table} (${SCHEME_TITLE[scheme]}, ${target.rows} rows): data check failed: ${bad} bad sample row(s), ${total} rows, ${withValue} with a value, ${flagged} flagged encrypted`);
    }
    const under = scheme === "secretbox" ? "the last master key (each row's workspace key)" : `the last key (${dataset.key.id}, with each row's additional data)`;
    this.verification.push(`${engine}, ${shape.table} (${SCHEME_TITLE[scheme]}), ${target.rows.toLocaleString("en-US")} rows: ${rows.length} sampled rows open under ${under} to the plaintext they were built with${scheme === "k8s" ? "; every row still flagged encrypted" : ""}`);
  }

  async destroy(): Promise<void> {
    for (const { target } of [...this.datasets, ...this.appDatasets]) await target.destroy().catch((error: unknown) => log(`cleanup: ${(error as Error).message}`));
    rmSync(this.work, { recursive: true, force: true });
  }
}

function sqliteVersion(): string {
  const db = new Database(":memory:");
  try {
    return db.prepare("SELECT sqlite_version()").pluck().get() as string;
  } finally {
    db.close();
  }
}

function commandLine(options: BenchOptions): string {
  const args = options.argv.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "'\\''")}'`)).join(" ");
  if (process.env.npm_lifecycle_event === "bench") return `npm run bench${args ? ` -- ${args}` : ""}`;
  return `node dist-bench/bench/run.js${args ? ` ${args}` : ""}`;
}

/** Prints the tables, writes the doc section, and judges the targets. */
function publish(results: BenchResults, options: BenchOptions, resultsFile: string | undefined): number {
  process.stdout.write(`${renderText(results)}\n`);
  if (resultsFile !== undefined) log(`raw samples: ${relative(process.cwd(), resultsFile)}`);
  if (options.doc !== undefined) {
    const docPath = isAbsolute(options.doc) ? options.doc : resolve(REPO_ROOT, options.doc);
    writeDoc(docPath, results);
    log(`wrote ${relative(process.cwd(), docPath)}`);
  }
  const missed = ratioRows(results).filter((row) => row.verdict === "FAIL");
  if (options.checkTargets && missed.length > 0) {
    log(`${missed.length} target(s) missed`);
    return 1;
  }
  return 0;
}

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  if (options === "help") {
    process.stdout.write(USAGE);
    return 0;
  }
  if (options.fromResults !== undefined) {
    const saved = JSON.parse(readFileSync(options.fromResults, "utf8")) as BenchResults;
    return publish(saved, options, undefined);
  }
  const startedAt = new Date();
  const bench = new Bench(options, await LoadMonitor.forServer(options.engines.includes("postgres") ? options.adminUrl : undefined));
  const cleanup = () => {
    rmSync(bench.work, { recursive: true, force: true });
    process.exit(130);
  };
  process.once("SIGINT", cleanup);
  process.once("SIGTERM", cleanup);
  try {
    const postgres = options.engines.includes("postgres") ? await serverFacts(options.adminUrl) : undefined;
    await bench.build();
    const sqliteTarget = bench.datasets.find((dataset) => dataset.target instanceof SqliteTarget)?.target as SqliteTarget | undefined;
    const sqlite = sqliteTarget?.sqliteVersion() ?? (options.engines.includes("sqlite") ? sqliteVersion() : undefined);
    await bench.rounds();
    if (options.profile) {
      await bench.profile().catch((error: unknown) => log(`profiling failed, results are kept without it: ${error instanceof Error ? error.message : String(error)}`));
    }
    await bench.verify();
    const finishedAt = new Date();
    const results: BenchResults = {
      command: commandLine(options),
      startedAt: startedAt.toISOString().replace(/\.\d+Z$/, "Z"),
      finishedAt: finishedAt.toISOString().replace(/\.\d+Z$/, "Z"),
      durationS: (finishedAt.getTime() - startedAt.getTime()) / 1000,
      rows: options.rows,
      rounds: options.rounds,
      batchSize: options.batchSize,
      rotateArgs: options.rotateArgs,
      rotateNodeFlags: options.rotateNodeFlags,
      peerSample: options.peerSample,
      cipherSample: options.cipherSample,
      rssProbeRows: options.rows > RSS_PROBE_ROWS ? RSS_PROBE_ROWS : undefined,
      maxOtherLoad: options.maxOtherLoad,
      attempts: options.attempts,
      engines: options.engines,
      schemes: options.schemes,
      schemeRows: options.schemes.some((scheme) => scheme !== "coder") ? options.schemeRows : undefined,
      machine: machineFacts(postgres, sqlite, bench.cli.describes),
      measurements: [...bench.measurements.values()],
      profiles: bench.profiles,
      verification: bench.verification,
    };
    const resultsDir = join(REPO_ROOT, "bench", "results");
    mkdirSync(resultsDir, { recursive: true });
    const resultsFile = join(resultsDir, `bench-${results.startedAt.replace(/[:]/g, "")}-${options.rows}.json`);
    writeFileSync(resultsFile, `${JSON.stringify(results, null, 2)}\n`);
    return publish(results, options, resultsFile);
  } finally {
    await bench.destroy();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`[bench] failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
