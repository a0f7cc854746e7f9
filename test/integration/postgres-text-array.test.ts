/**
 * dbcrypt writes batches as binary text[] parameters it encodes itself. The oracle is the server's
 * own array_recv: whatever went in must come back out of unnest() exactly, element by element,
 * including NULLs, empty strings, the characters a text array literal has to escape, and
 * multi-byte UTF-8.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeTextArray, binaryTextArrayParameters } from "../../src/db/postgres-text-array.js";
import { createPgDatabase, type PgTestDatabase } from "../support/pg.js";

const AWKWARD: (string | null)[] = [
  "plain",
  "",
  null,
  "NULL",
  '"quoted"',
  "back\\slash",
  "{braces},commas",
  " leading and trailing ",
  "tab\tnew\nline",
  "ünïcödé ✓ 𝄞",
  "x".repeat(300_000),
];

describe("binary text[] parameters against PostgreSQL's array_recv", () => {
  let database: PgTestDatabase;
  let client: pg.Client;

  beforeAll(async () => {
    database = await createPgDatabase("textarray");
    client = new pg.Client({ connectionString: database.url });
    await client.connect();
  });

  afterAll(async () => {
    await client.end();
    await database.drop();
  });

  it("round-trips every element, in order, with its NULLs", async () => {
    const result = await client.query<{ element: string | null; position: string }>(
      "SELECT element, position FROM unnest($1::text[]) WITH ORDINALITY AS u(element, position) ORDER BY position",
      [encodeTextArray(AWKWARD)],
    );
    expect(result.rows.map((row) => row.element)).toEqual(AWKWARD);
    const dims = await client.query<{ lower: number; length: number }>("SELECT array_lower($1::text[], 1) AS lower, array_length($1::text[], 1) AS length", [encodeTextArray(AWKWARD)]);
    expect(dims.rows[0]).toEqual({ lower: 1, length: AWKWARD.length });
  });

  it("sends an empty array and an array of only NULLs", async () => {
    const empty = await client.query<{ n: number }>("SELECT cardinality($1::text[]) AS n", [encodeTextArray([])]);
    expect(empty.rows[0]?.n).toBe(0);
    const nulls = await client.query<{ n: string }>("SELECT count(*) FILTER (WHERE e IS NULL) AS n FROM unnest($1::text[]) AS e", [encodeTextArray([null, undefined, null])]);
    expect(Number(nulls.rows[0]?.n)).toBe(3);
  });

  it("leaves scalar parameters alone and refuses a non-text element", () => {
    const [array, scalar] = binaryTextArrayParameters([["a"], "clear-to"]);
    expect(Buffer.isBuffer(array)).toBe(true);
    expect(scalar).toBe("clear-to");
    expect(() => binaryTextArrayParameters([[1]])).toThrow(/number/);
  });

  it("is refused by the server when cast to another element type, so a type slip cannot pass silently", async () => {
    await expect(client.query("SELECT $1::int4[]", [encodeTextArray(["1"])])).rejects.toThrow(/element type 25 \(text\)/);
  });
});
