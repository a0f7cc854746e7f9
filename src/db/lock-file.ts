import { closeSync, openSync, readdirSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { hostname } from "node:os";
import { DbcryptError } from "../errors.js";
import type { RunLock } from "./dialect.js";
import type { Partition } from "./partition.js";

interface LockOwner {
  host: string;
  pid: number;
  command: string;
  since: string;
}

/**
 * One dbcrypt run per SQLite file. A lock file beside the database, created with O_EXCL; a file
 * left by a process that died on this host is recognised (its pid is gone) and taken over, so a
 * crash never needs manual cleanup.
 */
export async function acquireLockFile(path: string, command: string, what = "the lock on this database"): Promise<RunLock> {
  const owner: LockOwner = { host: hostname(), pid: process.pid, command, since: new Date().toISOString() };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, "wx", 0o600);
      writeSync(fd, JSON.stringify(owner));
      closeSync(fd);
      return {
        release: async () => {
          try {
            const current = JSON.parse(readFileSync(path, "utf8")) as LockOwner;
            if (current.pid === owner.pid && current.host === owner.host) unlinkSync(path);
          } catch {
            // Already gone: nothing to release.
          }
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") {
        throw new DbcryptError("database_error", `cannot create lock file ${path}: ${(error as NodeJS.ErrnoException).code}`, {
          hint: "dbcrypt needs to write a lock file next to the database",
        });
      }
      const holder = readOwner(path);
      if (holder !== undefined && holder.host === owner.host && !processIsAlive(holder.pid) && removeStaleLock(path, holder)) continue;
      const who = holder === undefined ? "an unknown process" : `${holder.command} (pid ${holder.pid} on ${holder.host}, since ${holder.since})`;
      throw new DbcryptError("lock_held", `another dbcrypt run holds ${what}: ${who}`, {
        hint: `wait for it to finish; if that process is gone, delete ${path}`,
      });
    }
  }
  throw new DbcryptError("lock_held", `could not take the lock file ${path}`, { hint: `if no dbcrypt run is active, delete ${path}` });
}

/**
 * Two runs can find the same stale file at once; if both removed it, the slower one would delete
 * the lock the faster one had just created. The takeover is therefore itself exclusive (a second
 * O_EXCL file), and the owner is read again under it.
 */
function removeStaleLock(path: string, stale: LockOwner): boolean {
  const takeover = `${path}.takeover`;
  let fd: number;
  try {
    fd = openSync(takeover, "wx", 0o600);
  } catch {
    return false;
  }
  try {
    const current = readOwner(path);
    if (current === undefined || current.pid !== stale.pid || current.host !== stale.host || current.since !== stale.since) return current === undefined;
    unlinkSync(path);
    return true;
  } finally {
    closeSync(fd);
    unlinkSync(takeover);
  }
}

function readOwner(path: string): LockOwner | undefined {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as LockOwner;
  } catch {
    return undefined;
  }
}

function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * The lock files of a SQLite database: `<db>.dbcrypt-lock` for a run without --partition, and
 * `<db>.dbcrypt-lock.part-I-of-N` for each part. A run takes its own file, then looks for the
 * other kind held by a live process and backs off if it finds one: of a whole run and a part that
 * start together, at least one sees the other, so they never run side by side.
 */
export async function acquireDatabaseLock(databasePath: string, command: string, partition: Partition | undefined): Promise<RunLock> {
  const base = `${databasePath}.dbcrypt-lock`;
  const own = partition === undefined ? base : `${base}.part-${partition.index}-of-${partition.count}`;
  const lock = await acquireLockFile(own, command, partition === undefined ? undefined : `the lock on partition ${partition.index}/${partition.count}`);
  const partPrefix = `${basename(base)}.part-`;
  const isPart = (name: string) => name.startsWith(partPrefix) && !name.endsWith(".takeover");
  // A whole run conflicts with any part; a part with a whole run, or with a part of a job of another N.
  let conflicting: { name: string; owner: LockOwner }[];
  try {
    conflicting = partition === undefined
      ? liveLockFiles(base, isPart)
      : liveLockFiles(base, (name) => name === basename(base) || (isPart(name) && !name.endsWith(`-of-${partition.count}`)));
  } catch (error) {
    await lock.release();
    throw new DbcryptError("database_error", `cannot list the lock files beside ${databasePath}: ${(error as NodeJS.ErrnoException).code ?? "read error"}`, { hint: "dbcrypt needs to read the database's directory" });
  }
  const [other] = conflicting;
  if (other === undefined) return lock;
  await lock.release();
  const what = other.name === basename(base) ? "the lock on this database (a run without --partition)" : `partition ${other.name.slice(partPrefix.length).replace("-of-", "/")}`;
  throw new DbcryptError("lock_held", `another dbcrypt run holds ${what}: ${other.owner.command} (pid ${other.owner.pid} on ${other.owner.host}, since ${other.owner.since})`, {
    hint: `wait for it to finish; if that process is gone, delete ${join(dirname(base), other.name)}`,
  });
}

/** Lock files beside `base` whose names match, held by a process that is still alive (or on another host). */
function liveLockFiles(base: string, matches: (name: string) => boolean): { name: string; owner: LockOwner }[] {
  const found: { name: string; owner: LockOwner }[] = [];
  for (const name of readdirSync(dirname(base))) {
    if (!matches(name)) continue;
    const owner = readOwner(join(dirname(base), name));
    if (owner === undefined) continue;
    if (owner.host === hostname() && !processIsAlive(owner.pid)) continue;
    if (owner.host === hostname() && owner.pid === process.pid) continue;
    found.push({ name, owner });
  }
  return found;
}
