import { readdirSync, readFileSync } from "node:fs";

/** Linux /proc readers: peak RSS and CPU time of a process, and machine-wide CPU time. */
const CLOCK_TICKS_PER_SECOND = 100;

/** VmHWM (peak resident set) in KiB, or undefined once the process is gone. */
export function peakRssKiB(pid: number): number | undefined {
  try {
    const match = /^VmHWM:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

export interface RssBreakdown {
  /** VmRSS and its parts, KiB: anonymous (heaps), file-backed (code, mapped files), shared memory. */
  rss: number;
  anon: number;
  file: number;
  shmem: number;
}

/** The current resident set and its parts, or undefined once the process is gone. */
export function rssBreakdownKiB(pid: number): RssBreakdown | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/status`, "utf8");
    const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)\\s+kB$`, "m").exec(text)?.[1] ?? NaN);
    const breakdown = { rss: field("VmRSS"), anon: field("RssAnon"), file: field("RssFile"), shmem: field("RssShmem") };
    return Number.isFinite(breakdown.rss) ? breakdown : undefined;
  } catch {
    return undefined;
  }
}

/** User + system CPU milliseconds of a process (all its threads), or undefined once it is gone. */
export function processCpuMs(pid: number): number | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? (ticks * 1000) / CLOCK_TICKS_PER_SECOND : undefined;
  } catch {
    return undefined;
  }
}

export interface MachineCpu {
  busyMs: number;
  totalMs: number;
}

/** Machine-wide CPU time from the first line of /proc/stat (busy = everything but idle and iowait). */
export function machineCpu(): MachineCpu | undefined {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
    const values = line.trim().split(/\s+/).slice(1).map(Number);
    const total = values.slice(0, 8).reduce((sum, value) => sum + value, 0);
    const idle = (values[3] ?? 0) + (values[4] ?? 0);
    return { busyMs: ((total - idle) * 1000) / CLOCK_TICKS_PER_SECOND, totalMs: (total * 1000) / CLOCK_TICKS_PER_SECOND };
  } catch {
    return undefined;
  }
}

interface ProcStat {
  pid: number;
  ppid: number;
  /** utime + stime + cutime + cstime, in clock ticks: the process and its reaped children. */
  ticks: number;
}

function readStat(pid: number | "self"): ProcStat | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return {
      pid: pid === "self" ? process.pid : pid,
      ppid: Number(fields[1]),
      ticks: Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]),
    };
  } catch {
    return undefined;
  }
}

/**
 * CPU of everything this benchmark is responsible for: this process with its reaped children (the
 * dbcrypt CLI runs) and, when the server is local, the PostgreSQL postmaster with all its children
 * (backends of both the bench and the CLI, and background writers; a backend that exits moves
 * into the postmaster's children time, so the sum stays continuous).
 */
export function ownCpuMs(postmasterPid: number | undefined, ownDatabases: readonly string[] = []): number {
  return (readStat("self")?.ticks ?? 0) * (1000 / CLOCK_TICKS_PER_SECOND) + serverCpuMs(postmasterPid, ownDatabases);
}

/** CPU of the local PostgreSQL alone: the postmaster with its reaped children and its live own processes. */
export function serverCpuMs(postmasterPid: number | undefined, ownDatabases: readonly string[] = []): number {
  let ticks = 0;
  if (postmasterPid !== undefined) {
    ticks += readStat(postmasterPid)?.ticks ?? 0;
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      const stat = readStat(Number(entry));
      if (stat !== undefined && stat.ppid === postmasterPid && isOwnServerProcess(stat.pid, ownDatabases)) ticks += stat.ticks;
    }
  }
  return (ticks * 1000) / CLOCK_TICKS_PER_SECOND;
}

/**
 * A live backend serving another client's database (someone's test suite on the same server) is
 * not ours; background processes (checkpointer, WAL writer, ...) and backends on the bench's own
 * databases are. Backends that have exited are only visible in the postmaster's children time, so
 * another client's backend that ends during a sample is counted as ours: the estimate of other
 * load is a lower bound.
 */
function isOwnServerProcess(pid: number, ownDatabases: readonly string[]): boolean {
  let title: string;
  try {
    title = readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ");
  } catch {
    return false;
  }
  const clientBackend = /\(\d+\)|\[local\]/.test(title);
  return !clientBackend || ownDatabases.some((name) => title.includes(` ${name} `));
}
