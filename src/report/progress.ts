import { createRequire } from "node:module";
import type CliProgress from "cli-progress";
import type { DbcryptEvent, EmitEvent } from "../ops/events.js";

/** The bar library is loaded when a bar is first drawn, on a terminal; scripts and CI never draw one. */
const require = createRequire(import.meta.url);

export interface ProgressOptions {
  mode: "bar" | "lines" | "silent";
  /** Milliseconds between plain lines off a TTY (0: a line for every batch). */
  lineIntervalMs: number;
}

/**
 * Renders the event stream for people, on stderr: a redrawn bar on a TTY, a plain line every few
 * seconds in logs (never silence for minutes, never bar escape codes in a file).
 */
export function createProgressRenderer(options: ProgressOptions): { emit: EmitEvent; close: () => void } {
  if (options.mode === "silent") return { emit: () => undefined, close: () => undefined };
  let bar: CliProgress.SingleBar | undefined;
  let lastLineAt = 0;
  const recent = new RecentRate();
  let startedAt = Date.now();
  const say = (text: string) => {
    bar?.stop();
    bar = undefined;
    process.stderr.write(`${text}\n`);
  };
  const emit: EmitEvent = (event: DbcryptEvent) => {
    switch (event.type) {
      case "start":
        startedAt = Date.now();
        recent.reset();
        say(`${event.command}: ${event.totalRows} value(s) to process in ${event.tables.length} table(s)`);
        return;
      case "key-inserted":
        say(`inserted key ${event.keyId} as #${event.number}`);
        return;
      case "pass":
        say(`pass ${event.pass}: ${event.reason}`);
        return;
      case "table-start":
        if (options.mode === "bar" && event.rows > 0) {
          const cliProgress = require("cli-progress") as typeof CliProgress;
          bar = new cliProgress.SingleBar(
            { stream: process.stderr, format: `${event.table} [{bar}] {value}/{total} values | {rate} values/s | ETA {eta_formatted}`, etaBuffer: 20, hideCursor: true, clearOnComplete: false },
            cliProgress.Presets.shades_classic,
          );
          bar.start(event.rows, 0, { rate: "0" });
        }
        return;
      case "batch": {
        recent.add(event.done);
        const rate = Math.round(recent.perSecond() ?? event.done / Math.max((Date.now() - startedAt) / 1000, 0.001));
        const eta = rate > 0 ? formatSeconds((event.totalRows - event.done) / rate) : "?";
        if (bar) {
          bar.setTotal(event.tableRows);
          bar.update(event.tableDone, { rate: String(rate) });
        } else if (options.mode === "lines" && Date.now() - lastLineAt >= options.lineIntervalMs) {
          lastLineAt = Date.now();
          process.stderr.write(`${event.table}: ${event.tableDone}/${event.tableRows} values; total ${event.done}/${event.totalRows}; ${rate} values/s; ETA ${eta}\n`);
        }
        return;
      }
      case "table-done":
        bar?.stop();
        bar = undefined;
        if (options.mode === "lines") process.stderr.write(`${event.table}: done, ${event.written} row(s) written\n`);
        return;
      case "undecryptable":
        say(`cannot decrypt ${event.table}.${event.column} row ${JSON.stringify(event.rowKey)} (key ${event.keyId ?? "-"}): ${event.reason}; row left unchanged`);
        return;
      case "key-revoked":
        say(`revoked key ${event.keyId}`);
        return;
      case "key-kept":
        say(`kept key ${event.keyId}: ${event.reason}`);
        return;
      case "throttle":
        say(`paused: ${event.reason}`);
        return;
      case "retry":
        say(`${event.table}: retry ${event.attempt} in ${event.delayMs}ms with batches of ${event.nextBatchSize}: ${event.error}`);
        return;
      case "skipped-concurrent":
        if (options.mode === "lines") process.stderr.write(`${event.table}: ${event.rows} row(s) changed underneath; they get another pass\n`);
        return;
      case "stop":
        bar?.stop();
        bar = undefined;
        return;
    }
  };
  return { emit, close: () => bar?.stop() };
}

/**
 * Values per second over the last few seconds: the ETA follows what the run does now (after a
 * pause, a slow table, a retry), not the average since it started.
 */
class RecentRate {
  static readonly WINDOW_MS = 10_000;
  #samples: { at: number; done: number }[] = [];

  reset(): void {
    this.#samples = [];
  }

  add(done: number): void {
    const now = Date.now();
    this.#samples.push({ at: now, done });
    while (this.#samples.length > 2 && now - (this.#samples[0] as { at: number }).at > RecentRate.WINDOW_MS) this.#samples.shift();
  }

  perSecond(): number | undefined {
    const first = this.#samples[0];
    const last = this.#samples[this.#samples.length - 1];
    if (first === undefined || last === undefined || last.at - first.at < 500) return undefined;
    return ((last.done - first.done) * 1000) / (last.at - first.at);
  }
}

function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const whole = Math.max(0, Math.round(seconds));
  const hours = Math.floor(whole / 3600);
  const minutes = Math.floor((whole % 3600) / 60);
  return hours > 0 ? `${hours}h${String(minutes).padStart(2, "0")}m` : minutes > 0 ? `${minutes}m${String(whole % 60).padStart(2, "0")}s` : `${whole}s`;
}
