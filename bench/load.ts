import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { machineCpu, ownCpuMs } from "./procfs.js";

/**
 * The machines this runs on are shared (2 cores; other sessions run test suites on them), so the
 * bench measures how much CPU *other* processes took during every sample: machine busy time minus
 * this process, its dbcrypt children and the local PostgreSQL server. Before each sample it waits
 * for a quiet moment, and a sample disturbed anyway is taken again.
 */
export interface LoadSnapshot {
  at: number;
  machineBusyMs: number;
  ownMs: number;
}

export class LoadMonitor {
  readonly postmasterPid: number | undefined;
  /** The bench's own databases: backends serving any other database count as other load. */
  readonly ownDatabases: string[] = [];

  constructor(postmasterPid: number | undefined) {
    this.postmasterPid = postmasterPid;
  }

  /** The local server's postmaster pid, from postmaster.pid in its data directory (undefined if remote). */
  static async forServer(adminUrl: string | undefined): Promise<LoadMonitor> {
    if (adminUrl === undefined) return new LoadMonitor(undefined);
    const client = new pg.Client({ connectionString: adminUrl });
    try {
      await client.connect();
      const dir = (await client.query<{ dir: string }>("SELECT current_setting('data_directory') AS dir")).rows[0]?.dir;
      const file = dir === undefined ? undefined : join(dir, "postmaster.pid");
      if (file === undefined || !existsSync(file)) return new LoadMonitor(undefined);
      const pid = Number(readFileSync(file, "utf8").split("\n")[0]);
      return new LoadMonitor(Number.isInteger(pid) && existsSync(`/proc/${pid}`) ? pid : undefined);
    } catch {
      return new LoadMonitor(undefined);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  snapshot(): LoadSnapshot {
    return { at: performance.now(), machineBusyMs: machineCpu()?.busyMs ?? 0, ownMs: ownCpuMs(this.postmasterPid, this.ownDatabases) };
  }

  /** Average cores used by other processes between two snapshots. */
  foreignCores(before: LoadSnapshot, after: LoadSnapshot): number {
    const wall = after.at - before.at;
    if (wall <= 0) return 0;
    return Math.max(0, (after.machineBusyMs - before.machineBusyMs - (after.ownMs - before.ownMs)) / wall);
  }

  /** Waits (up to timeoutMs) for a 300 ms window in which other processes use under `threshold` cores. */
  async waitForQuiet(threshold: number, timeoutMs: number): Promise<{ waitedMs: number; foreign: number }> {
    const started = performance.now();
    for (;;) {
      const before = this.snapshot();
      await new Promise((resolve) => setTimeout(resolve, 300));
      const foreign = this.foreignCores(before, this.snapshot());
      const waitedMs = performance.now() - started;
      if (foreign < threshold || waitedMs >= timeoutMs) return { waitedMs, foreign };
    }
  }
}
