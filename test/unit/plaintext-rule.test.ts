/**
 * Which plaintext values stay plaintext (reference §3.3), and agreement between the TypeScript
 * rule and the census SQL about what "blank" means.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { censusSqlite } from "../../src/db/sqlite-sql.js";
import type { EncryptedTable, PlaintextRule } from "../../src/schema/model.js";
import { isBlank, staysPlaintext } from "../../src/schema/plaintext-rule.js";

const RULES: PlaintextRule[] = ["never", "empty", "blank", "blank-or-empty-object"];
const ASCII_WHITESPACE = [" ", "\t", "\n", "\r", "\v", "\f"];

describe("staysPlaintext", () => {
  it("never encrypts NULL, whatever the rule", () => {
    for (const rule of RULES) expect(staysPlaintext(rule, null)).toBe(true);
  });

  it.each<[string, PlaintextRule, Record<string, boolean>]>([
    ["never: even '' is encrypted (user_links, external_auth_links, crypto_keys)", "never", { "": false, " ": false, "{}": false, x: false }],
    ["empty: only '' stays (gitsshkeys after a delete)", "empty", { "": true, " ": false, "\t": false, "{}": false, x: false }],
    ["blank: whitespace-only stays (AI and MCP secrets)", "blank", { "": true, " ": true, " \t\n\r\v\f": true, "{}": false, " x ": false }],
    [
      "blank-or-empty-object: chat_mcp_servers.headers",
      "blank-or-empty-object",
      { "": true, "  ": true, "{}": true, " {} ": true, "\n{}\t": true, "{ }": false, "{}{}": false, "[]": false, '{"a":1}': false, "{": false },
    ],
  ])("%s", (_name, rule, cases) => {
    for (const [value, expected] of Object.entries(cases)) expect([value, staysPlaintext(rule, value)]).toEqual([value, expected]);
  });

  it("blank: a whitespace-only value stays plaintext, as Coder's strings.TrimSpace(v) == \"\" test keeps it (chat_providers.api_key)", () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...ASCII_WHITESPACE), { minLength: 1 }), (parts) => {
        const value = parts.join("");
        expect(staysPlaintext("blank", value)).toBe(true);
        // Rules that do not trim encrypt it.
        expect(staysPlaintext("never", value)).toBe(false);
        expect(staysPlaintext("empty", value)).toBe(false);
      }),
    );
  });

  it("encrypts every non-blank value under every rule", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }).filter((value) => /[^ \t\n\r\v\f]/.test(value) && value.trim() !== "{}"), (value) => {
        for (const rule of RULES) expect(staysPlaintext(rule, value)).toBe(false);
      }),
    );
  });
});

describe("isBlank", () => {
  it("is true for any mix of ASCII whitespace", () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...ASCII_WHITESPACE)), (parts) => {
        expect(isBlank(parts.join(""))).toBe(true);
      }),
    );
  });

  it("is false as soon as one other character is present", () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(...ASCII_WHITESPACE)),
        fc.string({ unit: "binary", minLength: 1, maxLength: 1 }).filter((ch) => !ASCII_WHITESPACE.includes(ch)),
        fc.array(fc.constantFrom(...ASCII_WHITESPACE)),
        (before, ch, after) => {
          expect(isBlank(before.join("") + ch + after.join(""))).toBe(false);
        },
      ),
    );
  });

  it("uses ASCII whitespace only, so SQL and TypeScript agree (Unicode spaces are not blank)", () => {
    for (const unicodeSpace of ["\u00a0", "\u2003", "\u3000", "\u0085", "\ufeff"]) expect(isBlank(unicodeSpace)).toBe(false);
  });

  it("matches the character set the SQLite census trims", () => {
    const table: EncryptedTable = {
      ref: { schema: undefined, name: "t" },
      rowKey: ["id"],
      rowKeyTypes: ["INTEGER"],
      columns: [{ column: "v", keyIdColumn: "v_key_id", keepPlaintext: "blank", clearTo: null, source: "naming-rule" }],
      deletePolicy: { action: "delete-row" },
      context: [],
    };
    const codes = /trim\("v", char\(([0-9, ]+)\)\)/.exec(censusSqlite(table, table.columns[0]!))?.[1];
    expect(codes).toBeDefined();
    const trimmed = (codes as string).split(",").map((code) => String.fromCharCode(Number(code.trim())));
    expect(trimmed.sort()).toEqual([...ASCII_WHITESPACE].sort());
    for (const ch of trimmed) expect(isBlank(ch)).toBe(true);
  });
});
