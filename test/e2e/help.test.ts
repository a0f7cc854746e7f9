/**
 * Every command's --help ends with real examples, and every flag an example uses is one that
 * command takes: an example that no longer parses would teach operators a command that fails.
 */
import { describe, expect, it } from "vitest";
import { runCli } from "../support/cli.js";

const COMMAND_PATHS = ["", "status", "rotate", "decrypt", "delete", "keys", "keys generate", "keys id", "keys export", "keys list", "keys revoke", "keys init"];

async function help(path: string): Promise<string> {
  const run = await runCli([...(path === "" ? [] : path.split(" ")), "--help"]);
  expect(run.code, run.stderr).toBe(0);
  return run.stdout;
}

function listedCommands(helpText: string): string[] {
  const section = helpText.split("\nCommands:\n")[1]?.split("\n\n")[0] ?? "";
  // A command's line starts two spaces in; wrapped descriptions are indented further.
  return section.split("\n").filter((line) => /^ {2}\S/.test(line)).map((line) => line.trim().split(/[\s|]/)[0] ?? "").filter((name) => name !== "help");
}

describe("--help examples", () => {
  it("covers every command the CLI lists", async () => {
    const listed = [...listedCommands(await help("")), ...listedCommands(await help("keys")).map((name) => `keys ${name}`)];
    expect(listed.sort()).toEqual(COMMAND_PATHS.filter((path) => path !== "").sort());
  });

  it.each(COMMAND_PATHS)("dbcrypt %s --help ends with two or three examples that use only its own flags", async (path) => {
    const text = await help(path);
    const examples = text.split("\nExamples:\n")[1]?.trimEnd().split("\n") ?? [];
    expect(examples.length).toBeGreaterThanOrEqual(2);
    expect(examples.length).toBeLessThanOrEqual(3);
    for (const example of examples) {
      const match = /^ {2}\$ (?:[A-Z_]+=\S+ )?dbcrypt (.*)$/.exec(example);
      expect(match, example).not.toBeNull();
      const words = (match?.[1] ?? "").split(" ");
      const target = path === "" ? words.slice(0, words[0] === "keys" ? 2 : 1).join(" ") : path;
      if (path !== "" && path !== "keys") expect(words.slice(0, path.split(" ").length).join(" "), example).toBe(path);
      const own = target === path ? text : await help(target);
      for (const flag of words.filter((word) => word.startsWith("--"))) expect(own, `${example}: ${flag}`).toMatch(new RegExp(`\\s${flag}[ ,<\\n]`));
    }
  });
});
