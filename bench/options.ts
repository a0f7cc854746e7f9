import { parseArgs } from "node:util";
import { SCHEME_NAMES, type SchemeName } from "./app-dataset.js";
import type { Engine } from "./targets/target.js";

export const DEFAULT_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres";
export const ADMIN_URL_ENV = "DBCRYPT_BENCH_DATABASE_URL";
/** Peak RSS is also taken on a table of this size, to show memory stays flat as the table grows. */
export const RSS_PROBE_ROWS = 100_000;

export interface BenchOptions {
  rows: number;
  rounds: number;
  engines: Engine[];
  /** Value schemes measured: Coder's (oauth_tokens) and issue 10's AtelyaOS secretbox and Obot k8s aesgcm tables. */
  schemes: SchemeName[];
  /** Rows in each secretbox and k8s table (default: --rows). */
  schemeRows: number;
  batchSize: number;
  /** Rows the per-row peer rotates each round; its rate is extrapolated to the table. */
  peerSample: number;
  /** Values the in-memory cipher limit decrypts and re-encrypts each round. */
  cipherSample: number;
  smoke: boolean;
  /** Write the results section of this markdown file (undefined: don't). */
  doc: string | undefined;
  /** Run one extra rotate per engine under `node --cpu-prof` and summarise it. */
  profile: boolean;
  /** Exit 1 when a target is missed (default: exit 0 whenever the run completes). */
  checkTargets: boolean;
  /** Cores of other processes' load above which a sample is taken again. */
  maxOtherLoad: number;
  /** Tries per sample (1 = never again). */
  attempts: number;
  /** How long to wait for a quiet machine before each sample, ms. */
  quietTimeoutMs: number;
  /** Measure this commit's CLI (compiled into the run's temp dir) instead of the current dist/ build. */
  cliRef: string | undefined;
  /** Extra arguments for every `dbcrypt rotate` the bench runs (e.g. a tuning flag under test). */
  rotateArgs: string[];
  /** Node flags for every dbcrypt rotate process (e.g. a V8 heap setting an operator could put in NODE_OPTIONS). */
  rotateNodeFlags: string[];
  /** Process counts N for which the Coder table is also rotated by N `--partition I/N` processes at once. */
  partitions: number[];
  /** Rows of 4 KiB values in the big-value table (0: none); the 256 KiB table has a 64th as many. */
  bigRows: number;
  /** Re-render the tables (and the doc) from a saved results file instead of measuring. */
  fromResults: string | undefined;
  adminUrl: string;
  pgDatabase: string;
  argv: string[];
}

export const USAGE = `usage: npm run bench -- [options]

  --rows N            rows in the bench table (default 1000000; --smoke: 2000)
  --rounds N          interleaved rounds; median and min-max are reported (default 3; --smoke: 1)
  --engines LIST      postgres,sqlite (default both)
  --schemes LIST      coder,secretbox,k8s (default all): Coder's oauth_tokens, an AtelyaOS messages table
                      (secretbox, --preset atelyaos), an Obot properties table (k8s aesgcm, --preset obot)
  --scheme-rows N     rows in the secretbox and k8s tables (default: --rows)
  --batch-size N      rows per batch for dbcrypt and for the pure-SQL limit (default 1000, dbcrypt's default)
  --peer-sample N     rows the per-row peer baseline rotates per round, extrapolated (default 3000)
  --cipher-sample N   values the in-memory cipher limit processes per round (default min(rows, 200000))
  --smoke             small and quick: proves the benchmark completes (CI); writes no doc
  --doc PATH          markdown file whose generated section is rewritten (default docs/performance.md)
  --no-doc            write no markdown
  --profile           also run one rotate per engine under node --cpu-prof and summarise it
  --check-targets     exit 1 if a target from issue 5 is missed
  --pg-database NAME  database created (and dropped) for the run (default dbcrypt_bench)
  --cli-ref REF       measure the CLI of this git commit (compiled privately) instead of the dist/ build
  --big-rows N        also rotate tables of N values of 4 KiB and N/64 of 256 KiB, reported in MB/s
                      against the cipher's MB/s on the same sizes (default 20000; --smoke: 128; 0: none)
  --partitions LIST   also rotate the Coder table with N processes at once (--partition I/N) for each N
                      listed (default 2,3; --smoke: 2; "" for none)
  --rotate-args="A B" extra arguments for every dbcrypt rotate (e.g. --rotate-args="--crypto-threads 1")
  --rotate-node-flags="A B"  node flags for every dbcrypt rotate process (e.g. --rotate-node-flags="--max-semi-space-size=2")
  --from-results F    print the tables (and write --doc) from a saved bench/results/*.json; measure nothing
  --max-other-load C  take a sample again when other processes used more than C cores during it (default 0.25)
  --attempts N        tries per sample before keeping a disturbed one (default 3; --smoke: 1)
  --quiet-wait S      seconds to wait for a quiet machine before each sample (default 120; --smoke: 0)

  ${ADMIN_URL_ENV}  admin PostgreSQL URL allowed to CREATE DATABASE (default ${DEFAULT_ADMIN_URL})
`;

function partitionCounts(text: string): number[] {
  const counts = text.split(",").map((part) => part.trim()).filter((part) => part !== "").map(Number);
  for (const count of counts) if (!Number.isInteger(count) || count < 2 || count > 16) throw new Error("--partitions: list process counts from 2 to 16");
  return [...new Set(counts)];
}

function positive(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const value = Number(text.replace(/_/g, ""));
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive whole number`);
  return value;
}

function nonNegative(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} must be a number of at least 0`);
  return value;
}

export function parseOptions(argv: string[]): BenchOptions | "help" {
  const { values } = parseArgs({
    args: argv,
    options: {
      rows: { type: "string" },
      rounds: { type: "string" },
      engines: { type: "string" },
      schemes: { type: "string" },
      "scheme-rows": { type: "string" },
      "batch-size": { type: "string" },
      "peer-sample": { type: "string" },
      "cipher-sample": { type: "string" },
      smoke: { type: "boolean", default: false },
      doc: { type: "string" },
      "no-doc": { type: "boolean", default: false },
      profile: { type: "boolean", default: false },
      "check-targets": { type: "boolean", default: false },
      "pg-database": { type: "string" },
      "max-other-load": { type: "string" },
      "cli-ref": { type: "string" },
      "from-results": { type: "string" },
      "rotate-args": { type: "string" },
      "rotate-node-flags": { type: "string" },
      partitions: { type: "string" },
      "big-rows": { type: "string" },
      attempts: { type: "string" },
      "quiet-wait": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) return "help";
  const smoke = values.smoke === true;
  const rows = positive("rows", values.rows, smoke ? 2_000 : 1_000_000);
  const engines = (values.engines ?? "postgres,sqlite").split(",").map((name) => name.trim()).filter((name) => name !== "");
  for (const engine of engines) if (engine !== "postgres" && engine !== "sqlite") throw new Error(`--engines: unknown engine ${engine}`);
  if (engines.length === 0) throw new Error("--engines: name at least one engine");
  const schemes = (values.schemes ?? SCHEME_NAMES.join(",")).split(",").map((name) => name.trim()).filter((name) => name !== "");
  for (const scheme of schemes) if (!(SCHEME_NAMES as readonly string[]).includes(scheme)) throw new Error(`--schemes: unknown scheme ${scheme} (use ${SCHEME_NAMES.join(", ")})`);
  if (schemes.length === 0) throw new Error("--schemes: name at least one scheme");
  const pgDatabase = values["pg-database"] ?? "dbcrypt_bench";
  if (!/^[a-z_][a-z0-9_]{0,40}$/.test(pgDatabase)) throw new Error("--pg-database: use lowercase letters, digits and _");
  return {
    rows,
    rounds: positive("rounds", values.rounds, smoke ? 1 : 3),
    engines: [...new Set(engines)] as Engine[],
    schemes: SCHEME_NAMES.filter((scheme) => schemes.includes(scheme)),
    schemeRows: positive("scheme-rows", values["scheme-rows"], rows),
    batchSize: positive("batch-size", values["batch-size"], 1000),
    peerSample: Math.min(rows, positive("peer-sample", values["peer-sample"], smoke ? 300 : 3000)),
    cipherSample: Math.min(rows, positive("cipher-sample", values["cipher-sample"], 200_000)),
    smoke,
    doc: values["no-doc"] ? undefined : (values.doc ?? (smoke ? undefined : "docs/performance.md")),
    profile: values.profile === true,
    checkTargets: values["check-targets"] === true,
    maxOtherLoad: nonNegative("max-other-load", values["max-other-load"], 0.25),
    attempts: positive("attempts", values.attempts, smoke ? 1 : 3),
    quietTimeoutMs: nonNegative("quiet-wait", values["quiet-wait"], smoke ? 0 : 120) * 1000,
    cliRef: values["cli-ref"],
    fromResults: values["from-results"],
    rotateArgs: (values["rotate-args"] ?? "").split(/\s+/).filter((arg) => arg !== ""),
    rotateNodeFlags: (values["rotate-node-flags"] ?? "").split(/\s+/).filter((arg) => arg !== ""),
    partitions: partitionCounts(values.partitions ?? (smoke ? "2" : "2,3")),
    bigRows: nonNegative("big-rows", values["big-rows"], smoke ? 128 : 20_000),
    adminUrl: process.env[ADMIN_URL_ENV] || DEFAULT_ADMIN_URL,
    pgDatabase,
    argv,
  };
}
