import { DbcryptError } from "../errors.js";
import { ageSource } from "./age-source.js";
import { envSource } from "./env-source.js";
import { execSource } from "./exec-source.js";
import { fileSource, stdinSource } from "./file-source.js";
import type { KeySource, KeySourceContext } from "./key-source.js";

/** The placeholder shown where a key was given literally. */
export const LITERAL_KEY_PLACEHOLDER = "<key>";

/** Anything else is the key text itself (visible in `ps`; the docs say to prefer a source). */
const literalSource: KeySource = {
  name: "literal",
  matches: () => true,
  resolve: async (entry) => entry,
  describe: () => LITERAL_KEY_PLACEHOLDER,
};

/**
 * The key sources, tried in order; the literal source matches anything and so always comes last.
 * A new source is one object added with registerKeySource (or to the list below).
 */
const sources: KeySource[] = [stdinSource, fileSource, envSource, execSource, ageSource];

export function registerKeySource(source: KeySource): void {
  sources.push(source);
}

export function keySourceFor(entry: string): KeySource {
  return sources.find((source) => source.matches(entry)) ?? literalSource;
}

export function isLiteralEntry(entry: string): boolean {
  return keySourceFor(entry) === literalSource;
}

export function resolveKeyReference(entry: string, label: string, context: KeySourceContext): Promise<string> {
  return keySourceFor(entry).resolve(entry, label, context);
}

const URL_SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;

/**
 * One flag value (or environment variable) as the entries it lists: repeated flags each give a
 * value, a value may list entries separated by commas or newlines, and an entry whose source takes
 * the rest of the list (exec:) ends it. Each entry must be a source's syntax or key-shaped text;
 * anything else (a bare path, an unknown scheme) is refused by position, since guessing could turn
 * a path into a "key" or a key into a path.
 */
export function splitKeyList(value: string, flag: string): string[] {
  const entries: string[] = [];
  let rest = value;
  while (rest !== "") {
    const separator = rest.search(/[,\n]/);
    const head = separator === -1 ? rest : rest.slice(0, separator);
    if (keySourceFor(head.trim()).takesRestOfList === true) {
      entries.push(rest.trim());
      break;
    }
    // Spaces around a source (`@a.key, @b.key`) are how people write lists; a literal key keeps
    // them, and its parse then refuses them as Coder's CLI would.
    entries.push(isLiteralEntry(head.trim()) ? head : head.trim());
    rest = separator === -1 ? "" : rest.slice(separator + 1);
  }
  // One trailing separator (a file's last newline, a copied list's last comma) is not an entry.
  if (entries.length > 1 && entries[entries.length - 1] === "") entries.pop();
  entries.forEach((entry, index) => checkEntry(entry, index + 1, flag));
  return entries;
}

function checkEntry(entry: string, position: number, flag: string): void {
  if (!isLiteralEntry(entry)) return;
  const scheme = URL_SCHEME.exec(entry)?.[1];
  if (scheme !== undefined) {
    throw new DbcryptError("usage", `${flag} entry ${position}: dbcrypt has no ${scheme}:// key source`, {
      hint: "sources are @FILE, file://PATH, env://VAR, exec:COMMAND, age:PATH; secret managers are reached with exec: (docs/keys.md)",
      subject: { flag },
    });
  }
  // A '.' never occurs in a key, so such an entry is a path or a typo and safe to show. Anything
  // else is taken as a key, whose parse says exactly what is wrong with it without showing it.
  if (entry.includes(".")) {
    throw new DbcryptError("usage", `${flag} entry ${position}${entry.length <= 200 ? ` (${entry})` : ""} is neither a key nor a key source`, {
      hint: "a file is @PATH or file://PATH; other sources are env://VAR, exec:COMMAND, age:PATH",
      subject: { flag },
    });
  }
}

/** How plans and continue commands show one flag value: each entry as its source shows it. */
export function describeKeyList(value: string): string {
  try {
    return splitKeyList(value, "key").map((entry) => keySourceFor(entry.trim()).describe(entry.trim())).join(",");
  } catch {
    return LITERAL_KEY_PLACEHOLDER;
  }
}
