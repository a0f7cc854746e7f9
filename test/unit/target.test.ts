/**
 * --db parsing and URL redaction: every form the docs promise, and no password in anything we
 * print.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { describeTarget, parseDatabaseTarget, redactUrl } from "../../src/db/target.js";
import { DbcryptError } from "../../src/errors.js";

function targetError(input: string | undefined): DbcryptError {
  try {
    parseDatabaseTarget(input);
  } catch (error) {
    expect(error).toBeInstanceOf(DbcryptError);
    return error as DbcryptError;
  }
  throw new Error("expected parseDatabaseTarget to throw");
}

describe("parseDatabaseTarget", () => {
  it.each([
    "postgres://user:pw@localhost:5432/coder",
    "postgresql://user@db.internal/coder?sslmode=require",
    "POSTGRES://user@host/db",
    "PostgreSQL://host/db",
    "postgres://%2Fvar%2Frun%2Fpostgresql/coder",
  ])("%s is PostgreSQL, URL kept verbatim", (input) => {
    expect(parseDatabaseTarget(input)).toEqual({ kind: "postgres", url: input });
  });

  it.each([
    ["sqlite:app.db", "app.db"],
    ["sqlite:/var/lib/app/data.db", "/var/lib/app/data.db"],
    ["sqlite://relative/data.db", "relative/data.db"],
    ["sqlite:///abs/data.db", "/abs/data.db"],
    ["SQLITE:data", "data"],
    ["sqlite:file with spaces.bin", "file with spaces.bin"],
    ["data/app.db", "data/app.db"],
    ["./x.sqlite", "./x.sqlite"],
    ["/tmp/X.SQLITE3", "/tmp/X.SQLITE3"],
    ["C:\\data\\app.db", "C:\\data\\app.db"],
  ])("%s is SQLite at %s", (input, path) => {
    expect(parseDatabaseTarget(input)).toEqual({ kind: "sqlite", path });
  });

  it.each([undefined, "", "   "])("%j is a usage error naming --db and the env var", (input) => {
    const error = targetError(input);
    expect(error.code).toBe("usage");
    expect(error.message).toBe("no database given");
    expect(error.hint).toMatch(/--db/);
    expect(error.hint).toMatch(/DBCRYPT_DATABASE_URL/);
  });

  it.each(["sqlite:", "sqlite://", "SQLITE:"])("%j has no path", (input) => {
    const error = targetError(input);
    expect(error.code).toBe("bad_database_url");
    expect(error.message).toBe("sqlite: URL has no file path");
  });

  it.each(["mysql://root@localhost/db", "app.txt", "coder", "postgres:/missing-slash/db", "file:app.sqlite4", "app.db.bak"])("%j is not recognised", (input) => {
    const error = targetError(input);
    expect(error.code).toBe("bad_database_url");
    expect(error.message).toMatch(/^cannot tell what database the --db value( \(scheme "[a-z]+:"\))? names$/);
    expect(error.hint).toMatch(/postgres:\/\//);
  });

  it("redacts the password of an unrecognised URL in the error", () => {
    const error = targetError("mysql://root:hunter2secret@localhost/db");
    expect(error.message).not.toContain("hunter2secret");
    expect(error.message).toContain('scheme "mysql:"');
  });
});

describe("redactUrl", () => {
  it.each([
    ["postgres://coder:s3cr3t@localhost:5432/coder", "postgres://coder:***@localhost:5432/coder"],
    ["postgresql://u:pw@[::1]:5432/db?sslmode=disable", "postgresql://u:***@[::1]:5432/db?sslmode=disable"],
    ["postgres://u:pa%40ss@h/db", "postgres://u:***@h/db"],
    ["postgres://:onlypw@h/db", "postgres://:***@h/db"],
    ["postgres://u:pw@h1:5432,h2:5433/db", "postgres://u:***@h1:5432,h2:5433/db"],
  ])("%s -> %s", (url, redacted) => {
    expect(redactUrl(url)).toBe(redacted);
  });

  it("leaves a URL without a password unchanged", () => {
    for (const url of ["postgres://coder@localhost/coder", "postgres://localhost/coder?sslmode=require", "postgres://h/db"]) {
      expect(redactUrl(url)).toBe(url);
    }
  });

  it("redacts password-like query parameters and keeps the others", () => {
    const redacted = redactUrl("postgres://u@h/db?password=p1&sslpassword=p2&PGPASSWORD=p3&sslkey=%2Fkey.pem&client_secret=p4&application_name=dbcrypt");
    for (const secret of ["p1", "p2", "p3", "/key.pem", "%2Fkey.pem", "p4"]) expect(redacted).not.toContain(`=${secret}`);
    expect(redacted).toContain("application_name=dbcrypt");
    expect(redacted).toContain("password=***");
  });

  it.each([
    ["an unencoded '@'", "postgres://u:pa@ss@h/db", "pa@ss"],
    ["an unencoded '#'", "postgres://u:pa#ss99@h/db", "pa#ss99"],
    ["an unencoded '?'", "postgres://u:pa?ss99@h/db", "pa?ss99"],
    ["an unencoded ':'", "postgres://u:pa:ss99@h/db", "ss99"],
    ["a space", "postgres://u:pa ss99@h/db", "ss99"],
    ["an invalid port", "postgres://u:hunter2@h:notaport/db", "hunter2"],
  ])("hides a password with %s", (_name, url, secret) => {
    const redacted = redactUrl(url);
    expect(redacted).not.toContain(secret);
    expect(redacted).toContain("***");
  });

  it("hides any password made of letters, digits and punctuation other than / ? #", () => {
    const password = fc.string({ unit: fc.constantFrom(..."abcXYZ0189-._~!$&'()*+,;=:@%[] "), minLength: 6, maxLength: 24 }).filter((text) => /[a-zXYZ0-9]{3}/.test(text));
    fc.assert(
      fc.property(password, (secret) => {
        const url = `postgres://dbuser:${secret}@db.example.com:5432/app`;
        const redacted = redactUrl(url);
        expect(redacted).not.toContain(secret);
        expect(describeTarget(url)).not.toContain(secret);
      }),
      { numRuns: 300 },
    );
  });

  it("describeTarget names only the scheme of an unrecognised value, never the value", () => {
    expect(describeTarget("postgres://u:pw123@h/db")).toBe('the --db value (scheme "postgres:")');
    expect(describeTarget("data/app.txt")).toBe("the --db value");
  });

  describe("passwords that used to leak", () => {
    // A base64-generated password often holds '/'. new URL() then fails (the port becomes
    // "p"), and the fallback regex stops at '/', so the password is printed as-is, e.g. in
    // "cannot connect to PostgreSQL at …" and in every plan's target line.
    it("redactUrl hides a password holding an unencoded '/'", () => {
      expect(redactUrl("postgres://coder:ab/cd+ef==@db:5432/coder")).not.toContain("ab/cd+ef==");
    });

    // A libpq keyword/value string is not a URL, so describeTarget() returns it verbatim and the
    // "cannot tell what database … is" error prints the password.
    // With '?' or '#' after an empty or all-digit prefix, new URL() succeeds but reads the
    // prefix as the port and the rest as query/fragment, so there is no password to redact.
    it("redactUrl hides a password starting with '?'", () => {
      expect(redactUrl("postgres://coder:?hunter2@db:5432/coder")).not.toContain("hunter2");
    });

    it("redactUrl hides a password of digits then '#'", () => {
      expect(redactUrl("postgres://coder:1234#hunter2@db:5432/coder")).not.toContain("hunter2");
    });

    it("parseDatabaseTarget does not echo a keyword/value connection string with its password", () => {
      expect(targetError("host=db user=coder password=hunter2secret dbname=coder").message).not.toContain("hunter2secret");
    });

    it("parseDatabaseTarget does not echo a JDBC URL with its password", () => {
      expect(targetError("jdbc:postgresql://coder:hunter2secret@db/coder").message).not.toContain("hunter2secret");
    });
  });
});
