import type { SchemeName } from "./app-dataset.js";
import type { ProfileSummary } from "./profile.js";
import type { Engine } from "./targets/target.js";

export type MeasurementKind = "dbcrypt" | "limit" | "peer" | "info";

/** One measured thing; samples are indexed by round, so ratios can be paired round by round. */
export interface Measurement {
  id: string;
  engine: Engine | "any";
  label: string;
  kind: MeasurementKind;
  /** The value scheme measured (absent in results saved before issue 10: Coder's). */
  scheme?: SchemeName;
  /** Rows (or values) processed per sample. */
  rows: number;
  note: string;
  ms: (number | undefined)[];
  /** Peak RSS of the dbcrypt process per round, KiB (CLI measurements only). */
  rssKiB: (number | undefined)[];
  /** Split of the largest resident set polled per round, KiB: anonymous (heap) and file-backed. */
  rssAnonKiB: (number | undefined)[];
  rssFileKiB: (number | undefined)[];
  /** CPU of the dbcrypt process per round, ms (CLI measurements only). */
  cpuMs: (number | undefined)[];
  /**
   * CPU of the local PostgreSQL server (its backends and background processes) during the sample,
   * ms: what the database spent on this work (PostgreSQL rotates and the protocol limit).
   */
  serverCpuMs?: (number | undefined)[];
  /** Busy cores of the machine during the sample (CLI measurements only). */
  machineCores: (number | undefined)[];
  /** Cores used by processes other than the bench, its dbcrypt runs and the local PostgreSQL. */
  otherLoad: (number | undefined)[];
  /** Samples taken again because other processes disturbed them. */
  retries: number;
}

export interface MachineFacts {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  kernel: string;
  node: string;
  postgres: Record<string, string> | undefined;
  sqlite: string | undefined;
  drivers: Record<string, string>;
  commit: string;
}

export interface BenchResults {
  command: string;
  startedAt: string;
  finishedAt: string;
  durationS: number;
  rows: number;
  rounds: number;
  batchSize: number;
  /** Extra arguments given to every dbcrypt rotate. */
  rotateArgs?: string[];
  /** Node flags given to every dbcrypt rotate process. */
  rotateNodeFlags?: string[];
  peerSample: number;
  cipherSample: number;
  rssProbeRows: number | undefined;
  /** A sample with more other load than this (cores) was taken again, up to `attempts` times. */
  maxOtherLoad: number;
  attempts: number;
  engines: Engine[];
  /** Value schemes measured (absent in results saved before issue 10: Coder's only). */
  schemes?: SchemeName[];
  /** Rows in each secretbox and k8s table. */
  schemeRows?: number;
  machine: MachineFacts;
  measurements: Measurement[];
  profiles: { engine: Engine; rows: number; wallMs: number; summary: ProfileSummary; file: string }[];
  verification: string[];
}

export function newMeasurement(fields: Pick<Measurement, "id" | "engine" | "label" | "kind" | "rows" | "note" | "scheme">): Measurement {
  return { ...fields, ms: [], rssKiB: [], rssAnonKiB: [], rssFileKiB: [], cpuMs: [], machineCores: [], otherLoad: [], retries: 0 };
}
