import cliProgress from "cli-progress";
import type { DbcryptEvent, EmitEvent } from "./events.js";

export interface ProgressOptions {
  mode: "bar" | "lines" | "silent";
  /** Seconds between plain lines off a TTY. */
  lineIntervalMs: number;
}

/**
 * Renders the event stream for people, on stderr: a redrawn bar on a TTY, a plain line every few
 * seconds in logs (never silence for minutes, never bar escape codes in a file).
 */
export function createProgressRenderer(options: ProgressOptions): { emit: EmitEvent; close: () => void } {
  if (options.mode === "silent") return { emit: () => undefined, close: () => undefined };
  let bar: cliProgress.SingleBar | undefined;
  let lastLineAt = 0;
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
          bar = new cliProgress.SingleBar(
            { stream: process.stderr, format: `${event.table} [{bar}] {value}/{total} values | {rate} values/s | ETA {eta_formatted}`, etaBuffer: 20, hideCursor: true, clearOnComplete: false },
            cliProgress.Presets.shades_classic,
          );
          bar.start(event.rows, 0, { rate: "0" });
        }
        return;
      case "batch": {
        const elapsedSeconds = Math.max((Date.now() - startedAt) / 1000, 0.001);
        const rate = Math.round(event.done / elapsedSeconds);
        if (bar) {
          bar.setTotal(event.tableRows);
          bar.update(event.tableDone, { rate: String(rate) });
        } else if (options.mode === "lines" && Date.now() - lastLineAt >= options.lineIntervalMs) {
          lastLineAt = Date.now();
          process.stderr.write(`${event.table}: ${event.tableDone}/${event.tableRows} values; total ${event.done}/${event.totalRows}; ${rate} values/s\n`);
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
      case "notice":
        say(event.message);
        return;
      case "stop":
        bar?.stop();
        bar = undefined;
        return;
    }
  };
  return { emit, close: () => bar?.stop() };
}
