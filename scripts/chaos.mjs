#!/usr/bin/env node
/**
 * Runs the reliability suite (test/chaos) and prints its figures as a Markdown summary.
 *
 *   node scripts/chaos.mjs                      long form (DBCRYPT_CHAOS=long unless set), figures
 *                                               to a JSON Lines report in the temp directory
 *   node scripts/chaos.mjs --report FILE [...]  the same, report to FILE; other arguments go to vitest
 *   node scripts/chaos.mjs --summarize FILE     only print the summary of an existing report
 *
 * Sizes come from the environment (see test/chaos/support/settings.ts), e.g.
 *   DBCRYPT_CHAOS_ROWS=50000 DBCRYPT_CHAOS_KILLS=60 node scripts/chaos.mjs
 * Build first (npm run build): the suite drives bin/dbcrypt.js, which runs dist/.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const args = process.argv.slice(2);

function take(flag) {
  const index = args.indexOf(flag);
  if (index < 0) return undefined;
  const value = args[index + 1];
  if (value === undefined) throw new Error(`${flag} needs a file name`);
  args.splice(index, 2);
  return value;
}

const summarizeOnly = take("--summarize");
if (summarizeOnly !== undefined) {
  process.stdout.write(summarize(summarizeOnly));
  process.exit(0);
}

const report = take("--report") ?? join(tmpdir(), `dbcrypt-chaos-${new Date().toISOString().replace(/[:.]/g, "-")}.jsonl`);
const env = { ...process.env, DBCRYPT_CHAOS: process.env.DBCRYPT_CHAOS || "long", DBCRYPT_CHAOS_REPORT: report };
const started = new Date();
const run = spawnSync(process.execPath, ["node_modules/vitest/vitest.mjs", "run", "test/chaos", ...args], { stdio: "inherit", env });
const minutes = ((Date.now() - started.getTime()) / 60_000).toFixed(1);
process.stdout.write(`\nchaos suite (${env.DBCRYPT_CHAOS}) started ${started.toISOString()}, ${minutes} min, vitest exit ${run.status}; report: ${report}\n\n`);
if (existsSync(report)) process.stdout.write(summarize(report));
process.exit(run.status ?? 1);

function summarize(file) {
  const lines = readFileSync(file, "utf8").split("\n").filter(Boolean).map((line) => JSON.parse(line));
  const out = [];
  const row = (cells) => out.push(`| ${cells.join(" | ")} |`);
  const kills = lines.filter((line) => line.test.startsWith("kill9"));
  if (kills.length > 0) {
    out.push("### kill -9", "");
    row(["engine", "rows", "values", "kills (rotate/decrypt/encrypt/delete)", "runs", "finished before the kill", "where the kills landed", "values checked", "rows lost"]);
    row(["---", "---:", "---:", "---", "---:", "---:", "---", "---:", "---:"]);
    for (const line of kills) {
      const perPhase = Object.values(line.killsPerPhase).join("/");
      row([line.engine, line.rows, line.values, `${line.kills} (${perPhase})`, line.runs, line.finishedBeforeKill, Object.entries(line.landed).map(([where, n]) => `${where}: ${n}`).join("; "), line.valuesChecked, line.rowsLost]);
    }
    out.push("");
  }
  const cuts = lines.filter((line) => line.test.startsWith("connection-cut"));
  if (cuts.length > 0) {
    out.push("### connection cuts (PostgreSQL)", "");
    row(["rows", "cuts (rotate/decrypt/encrypt/delete)", "runs", "connections cut / seen", "where the cuts landed", "statement interrupted", "error reported (all exit 1)", "values checked", "rows lost"]);
    row(["---:", "---", "---:", "---", "---", "---", "---", "---:", "---:"]);
    const list = (counts) => Object.entries(counts ?? {}).map(([name, n]) => `${name}: ${n}`).join("; ");
    for (const line of cuts) {
      row([line.rows, `${line.cuts} (${Object.values(line.cutsPerPhase).join("/")})`, line.runs, `${line.connectionsCut} / ${line.connectionsSeen}`, list(line.landed), list(line.interrupted), list(Object.fromEntries(Object.entries(line.errors).map(([error, n]) => [error.replace(/^exit 1: /, ""), n]))), line.valuesChecked, line.rowsLost]);
    }
    out.push("");
  }
  const holes = lines.filter((line) => line.test.startsWith("black-hole"));
  if (holes.length > 0) {
    out.push("### black holes (PostgreSQL)", "");
    row(["rows", "black holes (rotate/decrypt/encrypt/delete)", "runs", "connections silenced / seen", "where they landed", "statement interrupted", "error reported (all exit 1)", "ended after the fault (min / median / max)", "values checked", "rows lost"]);
    row(["---:", "---", "---:", "---", "---", "---", "---", "---", "---:", "---:"]);
    const list = (counts) => Object.entries(counts ?? {}).map(([name, n]) => `${name}: ${n}`).join("; ");
    const seconds = (ms) => (ms === undefined ? "-" : `${(ms / 1000).toFixed(1)} s`);
    for (const line of holes) {
      const ended = line.endedAfterFaultMs ?? {};
      row([line.rows, `${line.blackholes} (${Object.values(line.blackholesPerPhase).join("/")})`, line.runs, `${line.connectionsSwallowed} / ${line.connectionsSeen}`, list(line.landed), list(line.interrupted), list(Object.fromEntries(Object.entries(line.errors).map(([error, n]) => [error.replace(/^exit 1: /, ""), n]))), `${seconds(ended.min)} / ${seconds(ended.median)} / ${seconds(ended.max)}`, line.valuesChecked, line.rowsLost]);
    }
    out.push("");
  }
  const other = lines.filter((line) => !line.test.startsWith("kill9") && !line.test.startsWith("connection-cut") && !line.test.startsWith("black-hole"));
  if (other.length > 0) {
    out.push("### other figures", "");
    for (const line of other) {
      const { test, mode, seed, finishedAt, ...figures } = line;
      out.push(`- **${test}** (${mode}, seed ${seed}, ${finishedAt}): ${Object.entries(figures).map(([name, value]) => `${name} ${typeof value === "object" ? JSON.stringify(value) : value}`).join(", ")}`);
    }
    out.push("");
  }
  return `${out.join("\n")}\n`;
}
