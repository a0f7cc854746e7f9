/**
 * Splits an exec: command into arguments the way a POSIX shell splits words, without anything
 * else a shell does (no variables, globs, pipes or redirections): quoting is all most secret
 * manager commands need, and running no shell means nothing in the command is interpreted twice.
 * Returns undefined for an unclosed quote or a trailing backslash.
 */
export function splitCommandLine(text: string): string[] | undefined {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  let quote: "'" | '"' | undefined;
  for (let index = 0; index < text.length; index++) {
    const char = text[index] as string;
    if (quote === "'") {
      if (char === "'") quote = undefined;
      else word += char;
      continue;
    }
    if (char === "\\") {
      const next = text[index + 1];
      if (next === undefined) return undefined;
      // Inside double quotes a backslash escapes only what the shell lets it escape there.
      if (quote === '"' && !'"\\$`'.includes(next)) word += char;
      word += next;
      index++;
      inWord = true;
      continue;
    }
    if (quote === '"') {
      if (char === '"') quote = undefined;
      else word += char;
      continue;
    }
    if (char === "'" || char === '"') {
      quote = char;
      inWord = true;
    } else if (/\s/.test(char)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
    } else {
      word += char;
      inWord = true;
    }
  }
  if (quote !== undefined) return undefined;
  if (inWord) words.push(word);
  return words;
}
