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

  it("masks secret URL parameters and notes it", () => {
    const next = continueCommand(argv("rotate", "--db", "postgres://app@db/app?password=hunter22&sslmode=require", "--new-key", "@k"));
    expect(next.command).not.toContain("hunter22");
    expect(next.note).toBe(PASSWORD_LEFT_OUT_NOTE);
  });
});
