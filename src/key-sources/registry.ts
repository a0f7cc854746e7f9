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

/** A standard padded base64 key of 32 bytes, as it would sit in a list. */
const KEY_TEXT = /^[A-Za-z0-9+/]{43}=$/;

/**
 * One flag value (or environment variable) as the entries it lists: repeated flags each give a
 * value, a value may list entries separated by commas or newlines, and an entry whose source may
 * hold commas itself (exec:) takes the rest of its line. Nothing after such an entry may look like
 * a key or a source: that is a list the operator meant to go on, and running it as part of a
 * command would put a key into the command's arguments.
 */
export function splitKeyList(value: string, flag: string): string[] {
  const entries: string[] = [];
  let rest = value;
  // As String.split would: a separator at the very end leaves one more, empty, entry.
  for (;;) {
    const separator = rest.search(/[,\n]/);
    const head = separator === -1 ? rest : rest.slice(0, separator);
    if (keySourceFor(head.trim()).takesRestOfList === true) {
      const lineEnd = rest.indexOf("\n");
      const entry = (lineEnd === -1 ? rest : rest.slice(0, lineEnd)).trim();
      refuseListAfterCommand(entry, entries.length + 1, flag);
      entries.push(entry);
      if (lineEnd === -1) break;
      rest = rest.slice(lineEnd + 1);
      continue;
    }
    // Spaces around a source (`@a.key, @b.key`) are how people write lists; a literal key keeps
    // them, and its parse then refuses them as Coder's CLI would.
    entries.push(isLiteralEntry(head.trim()) ? head : head.trim());
    if (separator === -1) break;
    rest = rest.slice(separator + 1);
  }
  // One trailing separator (a file's last newline, a copied list's last comma) is not an entry.
  if (entries.length > 1 && entries[entries.length - 1] === "") entries.pop();
  entries.forEach((entry, index) => checkEntry(entry, index + 1, flag));
  return entries;
}

function refuseListAfterCommand(entry: string, position: number, flag: string): void {
  const after = entry.split(",").slice(1).map((part) => part.trim());
  if (after.some((part) => KEY_TEXT.test(part) || (part !== "" && !isLiteralEntry(part)))) {
    throw new DbcryptError("usage", `${flag} entry ${position} is an exec: command followed by more keys or sources; a command takes the rest of its line, so it must come last`, {
      hint: `give the command its own ${flag}, or put it after the other entries`,
      subject: { flag },
    });
  }
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
  // A '.' never occurs in a key, so the entry is a path or a key with a stray character: it is
  // refused by position and length only, since it may be most of a key.
  if (entry.includes(".")) {
    throw new DbcryptError("usage", `${flag} entry ${position} (${entry.length} characters, with a '.') is neither a key nor a key source`, {
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
