import { describe, expect, it } from "vitest";
import { continueCommand, PASSWORD_LEFT_OUT_NOTE } from "../../src/cli/common.js";

const argv = (...args: string[]) => ["node", "dbcrypt", ...args];

describe("continueCommand", () => {
  it("repeats the arguments, keeping @FILE references and replacing literal keys", () => {
    const next = continueCommand(argv("rotate", "--db", "app.db", "--new-key", "@new.key", "--old-keys", "c2VjcmV0", "--keys=abc", "--yes"));
    expect(next).toEqual({ command: "dbcrypt rotate --db app.db --new-key @new.key --old-keys <key> --keys=<key> --yes", note: undefined });
  });

  it("leaves a URL without a password as it is, with no note", () => {
    expect(continueCommand(argv("decrypt", "--db", "postgres://app@db:5432/app?sslmode=require", "--keys", "@k"))).toEqual({
      command: "dbcrypt decrypt --db 'postgres://app@db:5432/app?sslmode=require' --keys @k",
      note: undefined,
    });
  });

  it.each([
    ["postgres://app:s3cr3t-pw@db/app", "postgres://app@db/app"],
    ["postgresql://app:ab/cd+ef==@db:5432/app", "postgresql://app@db:5432/app"],
    ["postgres://app:?x#y@db/app", "postgres://app@db/app"],
  ])("leaves the password of %s out (not masked: the URL still connects) and says how to supply it", (url, shown) => {
    for (const args of [["--db", url], [`--db=${url}`]]) {
      const next = continueCommand(argv("delete", ...args, "--yes"));
      expect(next.command).toContain(shown);
      expect(next.command).not.toMatch(/s3cr3t|ab\/cd|\?x#y|\*\*\*/);
      expect(next.note).toBe(PASSWORD_LEFT_OUT_NOTE);
    }
  });

  it("drops secret URL parameters (a masked one would be sent as the password), keeps the TLS file paths, and notes it", () => {
    const url = "postgres://app@db/app?password=hunter22&sslmode=require&sslkey=/etc/k.pem&sslpassword=pw2x&sslrootcert=/etc/ca.pem";
    const next = continueCommand(argv("rotate", "--db", url, "--new-key", "@k"));
    expect(next.command).toBe("dbcrypt rotate --db 'postgres://app@db/app?sslmode=require&sslkey=/etc/k.pem&sslrootcert=/etc/ca.pem' --new-key @k");
    expect(next.note).toBe(PASSWORD_LEFT_OUT_NOTE);
    const alone = continueCommand(argv("rotate", "--db", "postgres://app@db/app?password=hunter22", "--new-key", "@k"));
    expect(alone.command).toBe("dbcrypt rotate --db postgres://app@db/app --new-key @k");
  });

  it("prints a URL with which node-postgres takes the password from PGPASSWORD", async () => {
    const { default: ConnectionParameters } = (await import("pg/lib/connection-parameters.js" as string)) as { default: new (config: { connectionString: string }) => Record<string, unknown> };
    const next = continueCommand(argv("rotate", "--db", "postgres://app:s3cr3t-pw@db:5432/app?sslmode=disable&password=x2", "--new-key", "@k"));
    const printedUrl = /--db '?([^' ]+)'?/.exec(next.command)?.[1] as string;
    const saved = process.env.PGPASSWORD;
    process.env.PGPASSWORD = "from-the-environment";
    try {
      expect(new ConnectionParameters({ connectionString: printedUrl })).toMatchObject({ user: "app", host: "db", port: 5432, database: "app", password: "from-the-environment" });
    } finally {
      if (saved === undefined) delete process.env.PGPASSWORD;
      else process.env.PGPASSWORD = saved;
    }
  });
});
