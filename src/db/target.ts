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
  throw new DbcryptError("bad_database_url", `cannot tell what database ${describeTarget(input)} names`, {
    hint: "use a postgres:// or postgresql:// URL, sqlite:PATH, or a path ending in .db, .sqlite or .sqlite3",
  });
}

/**
 * Connection strings carry passwords; everything we print goes through here first. Works on the
 * raw text rather than URL parsing, because a password with an unencoded '/', '?' or '#' makes
 * the URL parse differently (or not at all) and would slip through.
 */
export function redactUrl(url: string): string {
  return maskSecretParameters(rewritePassword(url, (user) => `${user}:***`));
}

/**
 * The URL for a command the operator is told to run: the password is left out altogether, so the
 * URL still connects once the password comes from PGPASSWORD or ~/.pgpass (a `***` in its place
 * would be sent as the password). `removed` says whether there was anything to leave out.
 */
export function urlWithoutPassword(url: string): { url: string; removed: boolean } {
  const shown = dropSecretParameters(rewritePassword(url, (user) => user));
  return { url: shown, removed: shown !== url };
}

function rewritePassword(url: string, userInfoWithoutPassword: (user: string) => string): string {
  const schemeEnd = url.indexOf("://");
  if (schemeEnd < 0) return url;
  const afterScheme = url.slice(schemeEnd + 3);
  const userInfoEnd = afterScheme.lastIndexOf("@");
  if (userInfoEnd < 0) return url;
  const userInfo = afterScheme.slice(0, userInfoEnd);
  const colon = userInfo.indexOf(":");
  if (colon < 0) return url;
  return `${url.slice(0, schemeEnd + 3)}${userInfoWithoutPassword(userInfo.slice(0, colon))}@${afterScheme.slice(userInfoEnd + 1)}`;
}

/** Query parameters whose name has one of these in it are treated as secrets. */
const SECRET_PARAMETER_WORDS = "pass|secret|key|token";

function maskSecretParameters(url: string): string {
  return url.replace(new RegExp(`([?&][^=&#]*(?:${SECRET_PARAMETER_WORDS})[^=&#]*=)[^&#]*`, "gi"), "$1***");
}

/**
 * For a command to run: secret parameters are removed, not masked (node-postgres would send a
 * `password=***` as the password, overriding PGPASSWORD). sslkey, sslcert and sslrootcert name
 * files, not secrets, and the connection needs them, so they stay.
 */
function dropSecretParameters(url: string): string {
  const queryStart = url.indexOf("?");
  if (queryStart < 0) return url;
  const fragmentStart = url.indexOf("#", queryStart);
  const query = url.slice(queryStart + 1, fragmentStart < 0 ? undefined : fragmentStart);
  const kept = query.split("&").filter((parameter) => {
    const name = parameter.split("=")[0] ?? "";
    return /^ssl(key|cert|rootcert)$/i.test(name) || !new RegExp(SECRET_PARAMETER_WORDS, "i").test(name);
  });
  const rest = fragmentStart < 0 ? "" : url.slice(fragmentStart);
  return `${url.slice(0, queryStart)}${kept.length > 0 ? `?${kept.join("&")}` : ""}${rest}`;
}

/** Names an unrecognised --db value without echoing it: it may be a DSN with a password in it. */
export function describeTarget(input: string): string {
  const scheme = /^([a-z][a-z0-9+.-]{0,15}):/i.exec(input)?.[1];
  return scheme === undefined ? "the --db value" : `the --db value (scheme "${scheme}:")`;
}
