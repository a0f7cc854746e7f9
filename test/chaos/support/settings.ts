/**
 * Sizes of the reliability suite. Unset DBCRYPT_CHAOS gives the bounded form that runs in CI with
 * `npm test`; DBCRYPT_CHAOS=long (what `npm run test:chaos` sets) gives the full-size form. Every
 * size can be overridden on its own, e.g.
 *
 *   DBCRYPT_CHAOS_ROWS=50000 DBCRYPT_CHAOS_KILLS=60 npm run test:chaos
 *
 * DBCRYPT_CHAOS_SEED makes kill points, cut points and generated inputs repeatable (timing on a
 * busy machine still varies); DBCRYPT_CHAOS_REPORT names a JSON Lines file the figures go to.
 */
import { randomInt } from "node:crypto";

export type ChaosMode = "bounded" | "long";

function modeFromEnv(): ChaosMode {
  const raw = process.env.DBCRYPT_CHAOS;
  if (raw === undefined || raw === "" || raw === "bounded") return "bounded";
  if (raw === "long") return "long";
  throw new Error(`DBCRYPT_CHAOS must be "long" or "bounded", not ${JSON.stringify(raw)}`);
}

const mode = modeFromEnv();

function sizeFromEnv(name: string, bounded: number, long: number, minimum = 0): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return mode === "long" ? long : bounded;
  if (!/^[0-9]+$/.test(raw) || Number(raw) < minimum) throw new Error(`${name} must be a whole number >= ${minimum}, not ${JSON.stringify(raw)}`);
  return Number(raw);
}

export const chaos = {
  mode,
  /** Rows in the tables that hold encrypted columns, for the kill and cut campaigns. */
  rows: sizeFromEnv("DBCRYPT_CHAOS_ROWS", 1_500, 20_000, 50),
  /** kill -9 points per database kind, spread over rotate, decrypt, encrypt and delete. */
  kills: sizeFromEnv("DBCRYPT_CHAOS_KILLS", 8, 36, 1),
  /** Connection cuts on PostgreSQL, spread the same way. */
  cuts: sizeFromEnv("DBCRYPT_CHAOS_CUTS", 6, 32, 1),
  /** Black holes (the network goes silent, no reset) on PostgreSQL, spread the same way. */
  blackholes: sizeFromEnv("DBCRYPT_CHAOS_BLACKHOLES", 4, 24, 1),
  /** Runs under an intermittent SQLite lock holder. */
  lockRounds: sizeFromEnv("DBCRYPT_CHAOS_LOCK_ROUNDS", 1, 6, 1),
  /** Rows (about) under concurrent application writers, and how many writer rounds per engine. */
  writerRows: sizeFromEnv("DBCRYPT_CHAOS_WRITER_ROWS", 1_000, 5_000, 50),
  writerRounds: sizeFromEnv("DBCRYPT_CHAOS_WRITER_ROUNDS", 1, 4, 1),
  /** fast-check runs per property. */
  propertyRuns: sizeFromEnv("DBCRYPT_CHAOS_RUNS", 6, 60, 1),
  seed: sizeFromEnv("DBCRYPT_CHAOS_SEED", randomInt(2 ** 31 - 1), randomInt(2 ** 31 - 1)),
  report: process.env.DBCRYPT_CHAOS_REPORT || undefined,
} as const;

/** A test timeout that grows with the work asked of it. */
export function timeoutFor(units: number, msPerUnit: number, baseMs = 60_000): number {
  return Math.round(baseMs + units * msPerUnit);
}
