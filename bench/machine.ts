import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism, release, totalmem } from "node:os";
import { REPO_ROOT } from "./cli.js";
import type { MachineFacts } from "./results.js";

function cpuModel(): string {
  try {
    const match = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
    return match?.[1]?.trim() ?? "unknown";
  } catch {
    return "unknown";
  }
}

function packageVersion(name: string): string {
  try {
    const require = createRequire(`${REPO_ROOT}package.json`);
    return (require(`${name}/package.json`) as { version: string }).version;
  } catch {
    return "?";
  }
}

export function machineFacts(postgres: Record<string, string> | undefined, sqlite: string | undefined, measured: string): MachineFacts {
  return {
    cpus: availableParallelism(),
    cpuModel: cpuModel(),
    memoryGiB: totalmem() / 1024 ** 3,
    kernel: release(),
    node: process.version,
    postgres,
    sqlite,
    drivers: { pg: packageVersion("pg"), "better-sqlite3": packageVersion("better-sqlite3") },
    commit: measured,
  };
}
