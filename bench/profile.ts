import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/**
 * Summarises a V8 .cpuprofile (node --cpu-prof): self time per function and per area. "(idle)" in a
 * single-threaded CLI is time spent waiting on I/O, here the database, so the areas say directly
 * how much of a run is dbcrypt's own CPU and how much is the database.
 */
interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileSummary {
  totalMs: number;
  top: { frame: string; selfMs: number; share: number }[];
  /** Time by the nearest dbcrypt or dependency frame on the stack (native calls charged to their caller). */
  areas: { area: string; selfMs: number; share: number }[];
  /** The same, per owning function. */
  owners: { frame: string; selfMs: number; share: number }[];
}

export function latestProfile(dir: string): string | undefined {
  const files = readdirSync(dir).filter((name) => name.endsWith(".cpuprofile")).sort();
  const last = files[files.length - 1];
  return last === undefined ? undefined : join(dir, last);
}

export function summarizeProfile(path: string, topN = 15): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
  // Native work (node:crypto, Buffer, SQLite) shows up in node-core frames; charge it to the
  // nearest caller that belongs to dbcrypt or a dependency.
  const ownerOf = (node: ProfileNode): ProfileNode => {
    for (let current: ProfileNode | undefined = node; current !== undefined; current = byId.get(parentOf.get(current.id) ?? -1)) {
      if (/\/dist\/|node_modules\//.test(current.callFrame.url)) return current;
    }
    return node;
  };
  const selfUs = new Map<number, number>();
  // timeDeltas[i] is the gap before sample i; attribute it to the sample's node.
  for (let index = 0; index < profile.samples.length; index++) {
    const id = profile.samples[index] as number;
    const delta = profile.timeDeltas[index + 1] ?? 0;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, delta));
  }
  const totalUs = [...selfUs.values()].reduce((sum, value) => sum + value, 0) || 1;
  const byFrame = new Map<string, number>();
  const byArea = new Map<string, number>();
  const byOwner = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (node === undefined) continue;
    const frame = describeFrame(node);
    byFrame.set(frame, (byFrame.get(frame) ?? 0) + us);
    const owner = ownerOf(node);
    const area = areaOf(owner);
    const ownerFrame = owner === node || ["(idle)", "(program)", "(garbage collector)"].includes(node.callFrame.functionName) ? frame : `${describeFrame(owner)} (incl. native)`;
    byOwner.set(ownerFrame, (byOwner.get(ownerFrame) ?? 0) + us);
    byArea.set(area, (byArea.get(area) ?? 0) + us);
  }
  const rank = (entries: Map<string, number>) => [...entries].sort((a, b) => b[1] - a[1]);
  return {
    totalMs: totalUs / 1000,
    top: rank(byFrame).slice(0, topN).map(([frame, us]) => ({ frame, selfMs: us / 1000, share: us / totalUs })),
    areas: rank(byArea).map(([area, us]) => ({ area, selfMs: us / 1000, share: us / totalUs })),
    owners: rank(byOwner).slice(0, topN).map(([frame, us]) => ({ frame, selfMs: us / 1000, share: us / totalUs })),
  };
}

function shortUrl(url: string): string {
  if (url === "") return "";
  const nodeModules = url.lastIndexOf("node_modules/");
  if (nodeModules >= 0) return url.slice(nodeModules + "node_modules/".length);
  const dist = url.lastIndexOf("/dist/");
  if (dist >= 0) return url.slice(dist + 1);
  return url.replace(/^file:\/\//, "");
}

function describeFrame(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const name = functionName === "" ? "(anonymous)" : functionName;
  return url === "" ? name : `${name} ${shortUrl(url)}:${lineNumber + 1}`;
}

function areaOf(node: ProfileNode): string {
  const { functionName, url } = node.callFrame;
  if (functionName === "(idle)") return "idle: waiting on the database / I/O";
  if (functionName === "(garbage collector)") return "garbage collector";
  if (functionName === "(program)") return "V8/native (program)";
  if (url.includes("node_modules/pg") || url.includes("node_modules/pg-")) return "pg driver (JS)";
  if (url.includes("node_modules/better-sqlite3")) return "better-sqlite3 (JS + native SQLite)";
  if (url.includes("node_modules/")) return "other dependencies";
  if (url.includes("/dist/crypto/")) return "dbcrypt crypto (JS + node:crypto native)";
  if (url.includes("/dist/db/")) return "dbcrypt db layer";
  if (url.includes("/dist/ops/")) return "dbcrypt ops";
  if (url.includes("/dist/")) return "dbcrypt other";
  if (url.startsWith("node:") || url === "") return "node core / native";
  return "other";
}
