import { fileSource, literalSource, stdinSource } from "./builtin-sources.js";
import type { KeySource } from "./key-source.js";

/**
 * The key sources, tried in order; the literal source matches anything and so always comes last.
 * A new source is one object added with registerKeySource (or to the list below).
 */
const sources: KeySource[] = [stdinSource, fileSource];

export function registerKeySource(source: KeySource): void {
  sources.push(source);
}

export function keySourceFor(reference: string): KeySource {
  return sources.find((source) => source.matches(reference)) ?? literalSource;
}

export function resolveKeyReference(reference: string, label: string): Promise<string> {
  return keySourceFor(reference).resolve(reference, label);
}

export function describeKeyReference(reference: string): string {
  return keySourceFor(reference).describe(reference);
}
