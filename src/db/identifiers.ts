/**
 * Identifier quoting, the same for PostgreSQL and SQLite: double quotes, with any double quote
 * inside doubled. Every identifier in dbcrypt's SQL goes through here, whatever it is named.
 */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** A table as `"schema"."name"`, or `"name"` where there is no schema (SQLite). */
export function qualifiedTable(table: { ref: { schema: string | undefined; name: string } }): string {
  return table.ref.schema === undefined ? quoteIdent(table.ref.name) : `${quoteIdent(table.ref.schema)}.${quoteIdent(table.ref.name)}`;
}
