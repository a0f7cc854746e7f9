import { DbcryptError } from "../../errors.js";

/**
 * Strict reading of one scheme's `schemeOptions`: an unknown option or value is an error naming
 * it, because a misspelt option silently left at its default would derive the wrong keys and make
 * every value look undecryptable (or, worse, write new values the application cannot read).
 */
export class SchemeOptions {
  readonly #options: Readonly<Record<string, unknown>>;
  readonly #where: string;

  constructor(scheme: string, options: Readonly<Record<string, unknown>> | undefined, origin: string, allowed: readonly string[]) {
    this.#options = options ?? {};
    this.#where = `${origin}: schemeOptions of "${scheme}"`;
    for (const name of Object.keys(this.#options)) {
      if (!allowed.includes(name)) this.fail(`has unknown option "${name}" (allowed: ${allowed.join(", ")})`);
    }
  }

  oneOf<T extends string>(name: string, values: readonly T[], fallback: T): T {
    const value = this.#options[name];
    if (value === undefined) return fallback;
    if (typeof value !== "string" || !(values as readonly string[]).includes(value)) {
      this.fail(`option "${name}" must be one of ${values.map((item) => `"${item}"`).join(", ")}`);
    }
    return value as T;
  }

  fail(problem: string): never {
    throw new DbcryptError("bad_config", `${this.#where} ${problem}`, { hint: "see docs/schemes.md for each scheme's options" });
  }
}
