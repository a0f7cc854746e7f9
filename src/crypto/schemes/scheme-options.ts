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

  optionalString(name: string): string | undefined {
    const value = this.#options[name];
    if (value === undefined) return undefined;
    if (typeof value !== "string" || value.length === 0) this.fail(`option "${name}" must be a non-empty string`);
    return value as string;
  }

  stringList(name: string): string[] {
    const value = this.#options[name];
    if (value === undefined) return [];
    if (!Array.isArray(value) || value.some((item) => typeof item !== "string" || item.length === 0)) this.fail(`option "${name}" must be a list of non-empty strings`);
    return [...(value as string[])];
  }

  flag(name: string): boolean {
    const value = this.#options[name];
    if (value === undefined) return false;
    if (typeof value !== "boolean") this.fail(`option "${name}" must be true or false`);
    return value as boolean;
  }

  record(name: string): Record<string, string> {
    const value = this.#options[name];
    if (value === undefined) return {};
    if (typeof value !== "object" || value === null || Array.isArray(value) || Object.values(value).some((item) => typeof item !== "string")) this.fail(`option "${name}" must be an object of strings`);
    return { ...(value as Record<string, string>) };
  }

  fail(problem: string): never {
    throw new DbcryptError("bad_config", `${this.#where} ${problem}`, { hint: "see docs/schemes.md for each scheme's options" });
  }
}
