import { DbcryptError } from "../errors.js";

export interface InteractionOptions {
  yes: boolean;
}

/** Prompts only when a person can answer: both ends are a TTY and this is not CI. */
export function canPrompt(): boolean {
  return Boolean(process.stdin.isTTY && process.stderr.isTTY) && !process.env.CI;
}

/**
 * Asks before a destructive step, with No as the default. Severe steps (decrypt, delete) make the
 * operator type the command name, so a reflexive Enter or 'y' cannot confirm them.
 */
export async function confirmStep(question: string, options: InteractionOptions & { command: string; severe: boolean }): Promise<void> {
  if (options.yes) return;
  if (!canPrompt()) {
    throw new DbcryptError("confirmation_required", `${options.command} needs confirmation and there is no terminal to ask on: pass --yes`, {
      hint: "pass --yes to confirm (or --dry-run to only see the plan)",
    });
  }
  // Loaded only when someone is asked: most runs (--yes, CI) never are.
  const clack = await import("@clack/prompts");
  if (options.severe) {
    const answer = await clack.text({ message: `${question}\nType "${options.command}" to confirm`, output: process.stderr });
    if (clack.isCancel(answer) || answer.trim() !== options.command) throw cancelled();
    return;
  }
  const answer = await clack.confirm({ message: question, initialValue: false, output: process.stderr });
  if (clack.isCancel(answer) || answer !== true) throw cancelled();
}

function cancelled(): DbcryptError {
  return new DbcryptError("cancelled", "cancelled: nothing was written", { hint: "re-run and confirm, or pass --yes" });
}
