/**
 * The secret-manager recipes of docs/keys.md, run as written. Each recipe's commands are taken
 * from the document itself (the fenced block after its `<!-- recipe: NAME -->` marker), so the
 * docs and this test cannot drift apart. The secret manager's CLI is a stub on a temporary PATH
 * that accepts exactly the arguments the recipe must pass (and exits 64 otherwise) and prints the
 * secret the way the real tool prints it (with or without a trailing newline). The built CLI then
 * has to print the right key id, name the source in `status` and plans, and fail cleanly, with
 * one line and none of the tool's stdout, when the tool fails, hangs or is missing.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { aes256gcmKeyId } from "../../src/crypto/key-id.js";
import { createCoderSchema } from "../support/coder-schema.js";
import type { TestKey } from "../support/coder-crypto.js";
import { dbArg, runCli } from "../support/cli.js";
import { freshKey, registerManifest } from "../support/fixtures.js";
import { seedCoderData } from "../support/seed.js";
import { createTestDatabase, openTestDb, type CreatedTestDatabase } from "../support/test-db.js";

const KEYS_DOC = readFileSync(new URL("../../docs/keys.md", import.meta.url), "utf8");

/** What a stub program expects and prints: `output` gets the key's base64 in place of KEY. */
interface StubProgram {
  name: string;
  args: readonly string[];
  output: (keyBase64: string) => string;
  /** When set, standard input must be exactly this (jq reading vault's JSON). */
  stdin?: (keyBase64: string) => string;
}

interface Recipe {
  /** The NAME of `<!-- recipe: NAME -->` in docs/keys.md. */
  marker: string;
  programs: readonly StubProgram[];
}

/** Vault's `kv get -format=json` envelope for a KV v2 secret, as jq sees it. */
const vaultJson = (key: string) =>
  `${JSON.stringify({ request_id: "5c8a5d4e-0d4b-4f57-9b38-4b1f0b0b9d2e", lease_id: "", lease_duration: 0, renewable: false, data: { data: { key }, metadata: { created_time: "2026-11-26T06:51:29.000000Z", custom_metadata: null, deletion_time: "", destroyed: false, version: 1 } }, warnings: null }, null, 2)}\n`;

/**
 * The recipes, with the argv each tool must receive and its real output shape: `vault -field=`
 * and `gcloud … versions access` and `secret-tool lookup` print the bare value with no newline;
 * `aws --output text` and `az -o tsv` add one, as does `jq -r`.
 */
const RECIPES: readonly Recipe[] = [
  { marker: "vault", programs: [{ name: "vault", args: ["kv", "get", "-field=key", "secret/dbcrypt"], output: (key) => key }] },
  {
    marker: "aws",
    programs: [{ name: "aws", args: ["secretsmanager", "get-secret-value", "--secret-id", "dbcrypt/master", "--query", "SecretString", "--output", "text"], output: (key) => `${key}\n` }],
  },
  { marker: "gcloud", programs: [{ name: "gcloud", args: ["secrets", "versions", "access", "latest", "--secret=dbcrypt-master"], output: (key) => key }] },
  {
    marker: "az",
    programs: [{ name: "az", args: ["keyvault", "secret", "show", "--vault-name", "my-vault", "--name", "dbcrypt-master", "--query", "value", "-o", "tsv"], output: (key) => `${key}\n` }],
  },
  { marker: "secret-tool", programs: [{ name: "secret-tool", args: ["lookup", "service", "dbcrypt", "key", "master"], output: (key) => key }] },
  {
    marker: "vault-jq",
    programs: [
      { name: "vault", args: ["kv", "get", "-format=json", "secret/dbcrypt"], output: vaultJson },
      { name: "jq", args: ["-er", ".data.data.key"], stdin: vaultJson, output: (key) => `${key}\n` },
    ],
  },
];

/** A dbcrypt command line of a recipe block, split into words, and the exec: entry it passes. */
interface DocCommand {
  line: string;
  args: string[];
  entry: string;
  /** The flag the exec: entry is the value of, or "keys id" for `dbcrypt keys id ENTRY`. */
  role: string;
}

let root: string;
let stubCount = 0;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "dbcrypt-key-recipes-"));
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

/** A fresh directory holding the recipe's stub programs, all serving this key. */
function stubDir(programs: readonly StubProgram[], keyBase64: string): string {
  const dir = join(root, `stubs-${++stubCount}`);
  mkdirSync(dir, { mode: 0o700 });
  for (const program of programs) writeStub(dir, program.name, stubScript(program, keyBase64));
  return dir;
}

function writeStub(dir: string, name: string, body: string): void {
  const path = join(dir, name);
  writeFileSync(path, body, { mode: 0o700 });
  chmodSync(path, 0o700);
}

/** `#!/bin/sh` that exits 64 unless called with exactly `program.args`, then prints its output. */
function stubScript(program: StubProgram, keyBase64: string): string {
  // ${10}, not $10 (which sh reads as ${1}0).
  const checks = program.args.map((arg, index) => `[ "\${${index + 1}}" = ${shQuote(arg)} ]`);
  const lines = [
    "#!/bin/sh",
    `# stub of ${program.name} for the recipes of docs/keys.md`,
    `if ! { [ "$#" -eq ${program.args.length} ] && ${checks.join(" && ")}; }; then`,
    `  echo "stub ${program.name}: unexpected arguments: $*" >&2`,
    "  exit 64",
    "fi",
  ];
  if (program.stdin !== undefined) {
    // $(…) drops trailing newlines, so compare without them.
    lines.push(`input=$(cat)`, `if [ "$input" != ${shQuote(program.stdin(keyBase64).replace(/\n+$/, ""))} ]; then`, `  echo "stub ${program.name}: unexpected input" >&2`, "  exit 65", "fi");
  }
  lines.push(`printf '%s' ${shQuote(program.output(keyBase64))}`);
  return `${lines.join("\n")}\n`;
}

function shQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** PATH for the CLI: the stubs first, then only the system directories (no real vault, aws, …). */
function pathWith(dir: string): string {
  return `${dir}:/usr/bin:/bin`;
}

/** The lines of the fenced sh block right after `<!-- recipe: NAME -->`. */
function recipeBlock(marker: string): string[] {
  const escaped = marker.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const match = new RegExp(`<!-- recipe: ${escaped} -->\\s*\\n\`\`\`sh\\n([\\s\\S]*?)\\n\`\`\``).exec(KEYS_DOC);
  if (match === null) throw new Error(`docs/keys.md has no \`\`\`sh block right after <!-- recipe: ${marker} -->`);
  return (match[1] as string).split("\n");
}

/** Every `dbcrypt …` line of a recipe block that passes an exec: entry. */
function docCommands(marker: string): DocCommand[] {
  return recipeBlock(marker)
    .filter((line) => line.startsWith("dbcrypt ") && line.includes("exec:"))
    .map((line) => {
      const words = shellWords(line);
      const args = words.slice(1);
      const entries = args.filter((word) => word.startsWith("exec:"));
      if (entries.length !== 1) throw new Error(`docs/keys.md recipe ${marker}: expected one exec: argument in: ${line}`);
      const entry = entries[0] as string;
      const index = args.indexOf(entry);
      const role = args[0] === "keys" && args[1] === "id" ? "keys id" : (args[index - 1] ?? "");
      return { line, args, entry, role };
    });
}

/**
 * A shell line as words, as sh would split it: single quotes, double quotes (with their four
 * escapes) and backslashes. Lines that rely on anything else (expansions, pipes, redirections)
 * are refused: the test runs the words without a shell, so such a line would not be the same.
 */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  for (let index = 0; index < line.length; index++) {
    const char = line[index] as string;
    if (char === "'") {
      const end = line.indexOf("'", index + 1);
      if (end === -1) throw new Error(`unclosed ' in: ${line}`);
      word += line.slice(index + 1, end);
      index = end;
      inWord = true;
    } else if (char === '"') {
      index++;
      while (index < line.length && line[index] !== '"') {
        const inner = line[index] as string;
        if (inner === "$" || inner === "`") throw new Error(`expansion inside "…" in: ${line}`);
        if (inner === "\\" && index + 1 < line.length && '"\\$`'.includes(line[index + 1] as string)) index++;
        word += line[index];
        index++;
      }
      if (index >= line.length) throw new Error(`unclosed " in: ${line}`);
      inWord = true;
    } else if (char === "\\") {
      if (index + 1 >= line.length) throw new Error(`line continuation in: ${line}`);
      word += line[++index];
      inWord = true;
    } else if (/\s/.test(char)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
    } else if (char === "#" && !inWord) {
      break;
    } else if ("|&;<>()$`*?[~".includes(char)) {
      throw new Error(`shell syntax (${char}) outside quotes in: ${line}`);
    } else {
      word += char;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}

function keysIdCommand(marker: string): DocCommand {
  const commands = docCommands(marker).filter((command) => command.role === "keys id");
  if (commands.length !== 1) throw new Error(`docs/keys.md recipe ${marker}: expected exactly one \`dbcrypt keys id 'exec:…'\` line, found ${commands.length}`);
  return commands[0] as DocCommand;
}

function recipeNamed(marker: string): Recipe {
  const recipe = RECIPES.find((candidate) => candidate.marker === marker);
  if (recipe === undefined) throw new Error(`no recipe ${marker}`);
  return recipe;
}

describe("docs/keys.md secret-manager recipes", () => {
  it("every recipe in the document is one this test knows, and each names one exec: entry throughout", () => {
    const markers = [...KEYS_DOC.matchAll(/<!-- recipe: ([a-z0-9-]+) -->/g)].map((match) => match[1]);
    expect(markers).toEqual(RECIPES.map((recipe) => recipe.marker));
    for (const recipe of RECIPES) {
      const entries = new Set(docCommands(recipe.marker).map((command) => command.entry));
      expect(entries.size, `recipe ${recipe.marker} uses one exec: entry in every line`).toBe(1);
      expect([...entries][0]).toBe(keysIdCommand(recipe.marker).entry);
    }
  });

  it.each(RECIPES.map((recipe) => [recipe.marker, recipe] as const))("%s: `dbcrypt keys id` prints the id of the key the tool returns", async (_marker, recipe) => {
    const key = freshKey();
    const command = keysIdCommand(recipe.marker);
    const env = { PATH: pathWith(stubDir(recipe.programs, key.base64)) };

    const plain = await runCli(command.args, { env });
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout.trim()).toBe(aes256gcmKeyId(key.bytes));
    expect(plain.stderr).toBe("");

    const json = await runCli([...command.args, "--json"], { env });
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({ id: aes256gcmKeyId(key.bytes), source: command.entry });
  });

  it("the stubs are strict: a recipe's arguments changed by one word fail the tool, and dbcrypt with it", async () => {
    const key = freshKey();
    const command = keysIdCommand("vault");
    const altered = command.args.map((arg) => (arg === command.entry ? arg.replace("secret/dbcrypt", "secret/dbcrypt-old") : arg));
    const run = await runCli(altered, { env: { PATH: pathWith(stubDir(recipeNamed("vault").programs, key.base64)) } });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("stub vault: unexpected arguments: kv get -field=key secret/dbcrypt-old");
    expect(run.stderr).toContain("exec:vault kv get -field=key secret/dbcrypt-old: exited with status 64");
  });

  describe("against a Coder-shaped SQLite database", () => {
    let database: CreatedTestDatabase;
    let url: string;
    let workDir: string;
    let seeded: TestKey;
    let next: TestKey;

    beforeAll(async () => {
      seeded = freshKey();
      next = freshKey();
      database = await createTestDatabase("sqlite", "key_recipes");
      const db = await openTestDb(database.target);
      try {
        await createCoderSchema(db);
        registerManifest(await seedCoderData(db, { users: 3, key: seeded }));
      } finally {
        await db.close();
      }
      url = dbArg(database.target);
      // The recipe lines name @old.key (the key the data is under) and @next.key (a new key).
      workDir = join(root, "work");
      mkdirSync(workDir, { mode: 0o700 });
      writeFileSync(join(workDir, "old.key"), `${seeded.base64}\n`, { mode: 0o600 });
      writeFileSync(join(workDir, "next.key"), `${next.base64}\n`, { mode: 0o600 });
    });

    afterAll(async () => {
      await database?.cleanup();
    });

    const dbLines = RECIPES.flatMap((recipe) =>
      docCommands(recipe.marker)
        .filter((command) => command.role !== "keys id")
        .map((command) => [recipe.marker, command.line, recipe, command] as const),
    );

    it("the recipes include a status and a rotate line to run", () => {
      expect(dbLines.some(([, , , command]) => command.args[0] === "status")).toBe(true);
      expect(dbLines.some(([, , , command]) => command.args[0] === "rotate")).toBe(true);
    });

    it.each(dbLines)("%s: %s", async (_marker, _line, recipe, command) => {
      // A key the run reads (--keys, --old-keys) is the one the data is under; --new-key is a new one.
      const writes = command.role === "--new-key";
      const served = writes ? freshKey() : seeded;
      const run = await runCli([...command.args, "--db", url], { cwd: workDir, env: { PATH: pathWith(stubDir(recipe.programs, served.base64)) } });
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toContain(`key ${aes256gcmKeyId(served.bytes)}${writes ? " (writes)" : ""} from ${command.entry}`);
      if (command.args[0] === "status") {
        expect(run.stdout).toContain("supplied keys:");
        expect(run.stdout).toContain("problems: none");
      }
    });

    it("vault: `status --keys exec:vault …` names the source in the report and in JSON", async () => {
      const command = docCommands("vault").find((candidate) => candidate.args[0] === "status");
      expect(command, "the vault recipe has a status line").toBeDefined();
      const { args, entry } = command as DocCommand;
      expect(entry).toBe("exec:vault kv get -field=key secret/dbcrypt");
      const env = { PATH: pathWith(stubDir(recipeNamed("vault").programs, seeded.base64)) };

      const text = await runCli([...args, "--db", url], { env });
      expect(text.code, text.stderr).toBe(0);
      expect(text.stdout).toMatch(new RegExp(`supplied keys:\\n  key ${aes256gcmKeyId(seeded.bytes)} from exec:vault kv get -field=key secret/dbcrypt\\n`));

      const json = await runCli([...args, "--db", url, "--json"], { env });
      expect(json.code, json.stderr).toBe(0);
      const report = JSON.parse(json.stdout) as { healthy: boolean; keySources: unknown };
      expect(report.healthy).toBe(true);
      expect(report.keySources).toEqual([{ keyId: aes256gcmKeyId(seeded.bytes), source: entry, writes: false }]);
    });

    it("vault: the tool failing ends status with exit 1 and one line, its stderr shown and its stdout never", async () => {
      const { entry } = keysIdCommand("vault");
      const dir = join(root, `stubs-${++stubCount}`);
      mkdirSync(dir, { mode: 0o700 });
      // Prints the key on stdout first: whatever a failed command printed there must be discarded.
      writeStub(
        dir,
        "vault",
        [
          "#!/bin/sh",
          `printf '%s' ${shQuote(seeded.base64)}`,
          "echo 'Error reading secret/data/dbcrypt: Error making API request.' >&2",
          "echo 'Code: 403. Errors:' >&2",
          "echo '* permission denied' >&2",
          "exit 2",
          "",
        ].join("\n"),
      );
      const env = { PATH: pathWith(dir) };

      const run = await runCli(["status", "--db", url, "--keys", entry], { env });
      expect(run.code).toBe(1);
      expect(run.stderr).toContain("* permission denied");
      expect(run.stderr).toContain(`dbcrypt: error: ${entry}: exited with status 2\n`);
      expect(run.stdout + run.stderr).not.toContain(seeded.base64);
      expect(run.stdout).toBe("");

      const json = await runCli(["status", "--db", url, "--keys", entry, "--json"], { env });
      expect(json.code).toBe(1);
      expect(JSON.parse(json.stdout)).toMatchObject({ type: "error", error: { code: "key_source_failed", exitCode: 1, message: `${entry}: exited with status 2`, subject: { flag: "--keys" } } });
    });
  });

  it("a tool that hangs is stopped by --key-command-timeout: exit 1, `did not finish within`", async () => {
    const { args, entry } = keysIdCommand("gcloud");
    const dir = join(root, `stubs-${++stubCount}`);
    mkdirSync(dir, { mode: 0o700 });
    writeStub(dir, "gcloud", "#!/bin/sh\nexec sleep 30\n");
    const started = Date.now();
    const run = await runCli([...args, "--key-command-timeout", "1s"], { env: { PATH: pathWith(dir) } });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`dbcrypt: error: ${entry}: did not finish within 1s`);
    expect(run.stdout).toBe("");
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  // A child of the command (here `sleep` under a wrapper script; likewise `sh -c '… | jq …'`, or a
  // CLI that is a shell wrapper) may hold the output pipe open after the command is gone.
  it("a hanging tool's own children do not hold the run past the timeout", async () => {
    const { args } = keysIdCommand("az");
    const dir = join(root, `stubs-${++stubCount}`);
    mkdirSync(dir, { mode: 0o700 });
    writeStub(dir, "az", "#!/bin/sh\nsleep 4\n");
    const started = Date.now();
    const run = await runCli([...args, "--key-command-timeout", "1s"], { env: { PATH: pathWith(dir) } });
    expect(run.code).toBe(1);
    expect(Date.now() - started).toBeLessThan(3_500);
  });

  it("a missing tool: exit 1, `command not found`", async () => {
    const { args, entry } = keysIdCommand("secret-tool");
    const empty = join(root, `stubs-${++stubCount}`);
    mkdirSync(empty, { mode: 0o700 });
    const run = await runCli(args, { env: { PATH: empty } });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`dbcrypt: error: ${entry}: command not found: secret-tool`);
  });

  it("a tool that succeeds but prints nothing: exit 2, `printed nothing on standard output`", async () => {
    const { args, entry } = keysIdCommand("secret-tool");
    const dir = join(root, `stubs-${++stubCount}`);
    mkdirSync(dir, { mode: 0o700 });
    writeStub(dir, "secret-tool", "#!/bin/sh\necho\n");
    const run = await runCli(args, { env: { PATH: pathWith(dir) } });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`dbcrypt: error: ${entry} printed nothing on standard output`);
  });
});
