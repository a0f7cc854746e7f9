/**
 * Where key text comes from. A reference given to a key flag (or its environment variable) is
 * handed to the first registered source that matches it; the caller never knows whether the key
 * came from the command line, a file or stdin, and later sources (commands, KMS plugins, backups)
 * plug in the same way. Sources return text: parsing it into keys is the scheme's job.
 */
export interface KeySource {
  /** A short name for docs and errors ("file", "stdin", "literal"). */
  readonly name: string;
  /** Whether `reference` is this source's syntax. */
  matches(reference: string): boolean;
  /** The key text the reference stands for: one key, or several separated by commas or newlines. */
  resolve(reference: string, label: string): Promise<string>;
  /**
   * How a plan or a continue command shows the reference: the reference itself when repeating it
   * reveals nothing (a file path), otherwise a placeholder. Never key material.
   */
  describe(reference: string): string;
}
