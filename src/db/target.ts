import { DbcryptError } from "../errors.js";

export type DatabaseTarget =
  | { kind: "postgres"; url: string }
  | { kind: "sqlite"; path: string };

const SQLITE_EXTENSIONS = [".db", ".sqlite", ".sqlite3"];

export function parseDatabaseTarget(input: string | undefined): DatabaseTarget {
  if (input === undefined || input.trim() === "") {
    throw new DbcryptError("usage", "no database given", {
      hint: "pass --db postgres://… or --db sqlite:PATH, or set DBCRYPT_DATABASE_URL",
    });
  }
  if (/^postgres(ql)?:\/\//i.test(input)) return { kind: "postgres", url: input };
  if (/^sqlite:/i.test(input)) {
    const path = input.replace(/^sqlite:(\/\/)?/i, "");
    if (path === "") throw new DbcryptError("bad_database_url", "sqlite: URL has no file path", { hint: "use --db sqlite:PATH" });
    return { kind: "sqlite", path };
  }
  if (SQLITE_EXTENSIONS.some((extension) => input.toLowerCase().endsWith(extension))) return { kind: "sqlite", path: input };
  throw new DbcryptError("bad_database_url", `cannot tell what database ${describeTarget(input)} is`, {
    hint: "use a postgres:// or postgresql:// URL, sqlite:PATH, or a path ending in .db, .sqlite or .sqlite3",
  });
}

/** Connection strings carry passwords; everything we print goes through here first. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== "") parsed.password = "***";
    for (const name of [...parsed.searchParams.keys()]) {
      if (/pass|secret|key/i.test(name)) parsed.searchParams.set(name, "***");
    }
    return parsed.toString();
  } catch {
    return url.replace(/:[^:@/]*@/, ":***@");
  }
}

export function describeTarget(input: string): string {
  return /^[a-z]+:\/\//i.test(input) ? redactUrl(input) : input;
}
