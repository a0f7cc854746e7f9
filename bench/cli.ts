import { execFileSync, spawn } from "node:child_process";
import { cpSync, existsSync, mkdirSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { machineCpu, peakRssKiB, processCpuMs, rssBreakdownKiB, type RssBreakdown } from "./procfs.js";

/** The package root, from dist-bench/bench/cli.js (or bench/cli.ts under a TS runner). */
export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

export interface CliSnapshot {
  /** bin/dbcrypt.js inside the snapshot. */
  path: string;
  /** What was measured: a commit, or the working tree's build. */
  describes: string;
}

function git(args: string[]): string {
  return execFileSync("git", args, { cwd: REPO_ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
}

function describeWorkingTree(): string {
  try {
    const dirty = git(["status", "--porcelain", "--", "src", "bin"]) !== "";
    return `${git(["rev-parse", "--short", "HEAD"])}${dirty ? " + uncommitted changes in src/" : ""} (working tree build)`;
  } catch {
    return "working tree build (no git)";
  }
}

/**
 * Copies the CLI the run measures into `dir` so that it cannot change underneath a run that lasts
 * many minutes (a rebuild of dist/ by someone else's `npm test`, say). Without `ref`: the current
 * build in dist/ (npm run bench builds it first). With `ref`: that commit's src/ and bin/, compiled
 * here with the project's tsconfig.build.json. node_modules is linked, not copied.
 */
export function snapshotCli(dir: string, ref: string | undefined): CliSnapshot {
  mkdirSync(dir, { recursive: true });
  symlinkSync(join(REPO_ROOT, "node_modules"), join(dir, "node_modules"), "dir");
  let describes: string;
  if (ref === undefined) {
    if (!existsSync(join(REPO_ROOT, "dist", "cli", "main.js"))) throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm run bench does)");
    for (const part of ["bin", "dist", "package.json"]) cpSync(join(REPO_ROOT, part), join(dir, part), { recursive: true });
    describes = describeWorkingTree();
  } else {
    const commit = git(["rev-parse", "--verify", `${ref}^{commit}`]);
    const archive = execFileSync("git", ["archive", "--format=tar", commit, "src", "bin", "package.json", "tsconfig.json", "tsconfig.build.json"], { cwd: REPO_ROOT, maxBuffer: 256 * 1024 * 1024 });
    execFileSync("tar", ["-x", "-C", dir], { input: archive });
    execFileSync(process.execPath, [join(REPO_ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", join(dir, "tsconfig.build.json")], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    describes = `commit ${commit.slice(0, 7)} (${ref})`;
  }
  return { path: join(dir, "bin", "dbcrypt.js"), describes };
}

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  wallMs: number;
  /** Peak resident set (VmHWM) of the dbcrypt process, KiB, as last polled while it ran. */
  peakRssKiB: number | undefined;
  /** The split of the largest resident set seen by the poll (VmHWM itself has no split). */
  largestRss: RssBreakdown | undefined;
  /** User + system CPU of the dbcrypt process, ms, as last polled. */
  cpuMs: number | undefined;
  /** Busy CPU of the whole machine during the run, in cores (2.0 = both cores busy throughout). */
  machineCores: number | undefined;
}

const POLL_MS = 20;

/**
 * Runs `node bin/dbcrypt.js ARGS` as an operator would, in `cwd` (so no dbcrypt.config.json from the
 * repository is picked up), with every DBCRYPT_* and DATABASE_URL variable removed. Peak RSS and CPU
 * are polled from /proc while it runs.
 */
export async function runCli(cliPath: string, args: string[], options: { cwd: string; nodeFlags?: string[] }): Promise<CliRun> {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (name.startsWith("DBCRYPT_") || name === "DATABASE_URL" || name === "NODE_OPTIONS") continue;
    env[name] = value;
  }
  env.NO_COLOR = "1";
  env.CI = "1";
  const cpuBefore = machineCpu();
  const started = performance.now();
  const child = spawn(process.execPath, [...(options.nodeFlags ?? []), cliPath, ...args], { cwd: options.cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (text: string) => { stdout += text; });
  child.stderr.setEncoding("utf8").on("data", (text: string) => { stderr += text; });
  const pid = child.pid;
  let peak: number | undefined;
  let largest: RssBreakdown | undefined;
  let cpu: number | undefined;
  const poll = (): void => {
    if (pid === undefined) return;
    const rss = peakRssKiB(pid);
    if (rss !== undefined) peak = Math.max(peak ?? 0, rss);
    const now = rssBreakdownKiB(pid);
    if (now !== undefined && (largest === undefined || now.rss > largest.rss)) largest = now;
    cpu = processCpuMs(pid) ?? cpu;
  };
  poll();
  const timer = setInterval(poll, POLL_MS);
  let wallMs = 0;
  let cpuAfter: ReturnType<typeof machineCpu>;
  child.on("exit", () => {
    wallMs = performance.now() - started;
    cpuAfter = machineCpu();
    clearInterval(timer);
  });
  // 'close' comes after 'exit' once stdout and stderr are drained.
  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on("error", (error) => {
      clearInterval(timer);
      reject(error);
    });
    child.on("close", (exitCode, exitSignal) => resolve({ code: exitCode, signal: exitSignal }));
  });
  const machineCores = cpuBefore && cpuAfter && wallMs > 0 ? (cpuAfter.busyMs - cpuBefore.busyMs) / wallMs : undefined;
  return { code, signal, stdout, stderr, wallMs, peakRssKiB: peak, largestRss: largest, cpuMs: cpu, machineCores };
}
