import { EXIT_CODE_SECOND_SIGNAL } from "./exit-codes.js";

/**
 * Why a run should stop at the next batch boundary: a signal, or the --max-duration deadline.
 * The first Ctrl-C asks for a clean stop; a second one exits at once (the open batch, if any,
 * is rolled back by the server when the connection drops).
 */
export class StopController {
  #reason: "signal" | "deadline" | undefined;
  #deadline: number | undefined;
  #signals = 0;
  readonly #onSignal = (signal: NodeJS.Signals) => {
    this.#signals++;
    if (this.#signals > 1) {
      process.stderr.write(`dbcrypt: second ${signal}, exiting now; finished batches are kept, re-run to continue\n`);
      process.exit(EXIT_CODE_SECOND_SIGNAL);
    }
    this.#reason = "signal";
    process.stderr.write(`dbcrypt: ${signal} received, stopping at the end of the current batch (press Ctrl-C again to exit now)\n`);
  };

  install(): void {
    process.on("SIGINT", this.#onSignal);
    process.on("SIGTERM", this.#onSignal);
  }

  uninstall(): void {
    process.off("SIGINT", this.#onSignal);
    process.off("SIGTERM", this.#onSignal);
  }

  startClock(maxDurationMs: number | undefined): void {
    if (maxDurationMs !== undefined) this.#deadline = Date.now() + maxDurationMs;
  }

  shouldStop(): boolean {
    if (this.#reason === undefined && this.#deadline !== undefined && Date.now() >= this.#deadline) this.#reason = "deadline";
    return this.#reason !== undefined;
  }

  get reason(): "signal" | "deadline" | undefined {
    return this.#reason;
  }
}
