#!/usr/bin/env node
// Builds fixtures/demo.db: a small Coder-shaped SQLite database whose secrets are encrypted under
// the demo key in fixtures/demo.key, with some leftover plaintext, as an application would leave
// it. Committed output; re-run only to change the fixture. Deterministic apart from nonces.
import { createCipheriv, createHash, randomBytes } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import Database from "better-sqlite3";

const out = new URL("../fixtures/demo.db", import.meta.url).pathname;
const key = Buffer.from(readFileSync(new URL("../fixtures/demo.key", import.meta.url), "utf8").trim(), "base64");
const keyId = createHash("sha256").update("aes256gcm").update(key).digest("hex").slice(0, 7);
const seal = (plaintext) => {
  const nonce = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, nonce);
  return Buffer.concat([nonce, cipher.update(plaintext, "utf8"), cipher.final(), cipher.getAuthTag()]).toString("base64");
};

rmSync(out, { force: true });
const db = new Database(out);
db.pragma("foreign_keys = ON");
db.exec(`
  CREATE TABLE dbcrypt_keys (number INTEGER NOT NULL PRIMARY KEY, active_key_digest TEXT UNIQUE, revoked_key_digest TEXT UNIQUE,
    created_at TEXT DEFAULT CURRENT_TIMESTAMP, revoked_at TEXT, test TEXT NOT NULL);
  CREATE TABLE users (id TEXT PRIMARY KEY, username TEXT NOT NULL, is_system INTEGER NOT NULL DEFAULT 0, deleted INTEGER NOT NULL DEFAULT 0);
  CREATE TABLE user_links (user_id TEXT NOT NULL REFERENCES users(id), login_type TEXT NOT NULL, linked_id TEXT NOT NULL DEFAULT '',
    oauth_access_token TEXT NOT NULL DEFAULT '', oauth_access_token_key_id TEXT REFERENCES dbcrypt_keys(active_key_digest),
    oauth_refresh_token TEXT NOT NULL DEFAULT '', oauth_refresh_token_key_id TEXT REFERENCES dbcrypt_keys(active_key_digest),
    PRIMARY KEY (user_id, login_type));
  CREATE TABLE external_auth_links (provider_id TEXT NOT NULL, user_id TEXT NOT NULL REFERENCES users(id),
    oauth_access_token TEXT NOT NULL, oauth_access_token_key_id TEXT REFERENCES dbcrypt_keys(active_key_digest),
    oauth_refresh_token TEXT NOT NULL, oauth_refresh_token_key_id TEXT REFERENCES dbcrypt_keys(active_key_digest),
    PRIMARY KEY (provider_id, user_id));
  CREATE TABLE gitsshkeys (user_id TEXT PRIMARY KEY REFERENCES users(id), private_key TEXT NOT NULL,
    private_key_key_id TEXT REFERENCES dbcrypt_keys(active_key_digest), public_key TEXT NOT NULL);
  CREATE TABLE user_secrets (id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id), name TEXT NOT NULL,
    value TEXT NOT NULL, value_key_id TEXT REFERENCES dbcrypt_keys(active_key_digest));
  CREATE TABLE crypto_keys (feature TEXT NOT NULL, sequence INTEGER NOT NULL, secret TEXT,
    secret_key_id TEXT REFERENCES dbcrypt_keys(active_key_digest), PRIMARY KEY (feature, sequence));
  CREATE TABLE mcp_server_configs (id TEXT PRIMARY KEY, oauth2_client_secret TEXT NOT NULL DEFAULT '',
    oauth2_client_secret_key_id TEXT REFERENCES dbcrypt_keys(active_key_digest), api_key_value TEXT NOT NULL DEFAULT '',
    api_key_value_key_id TEXT REFERENCES dbcrypt_keys(active_key_digest));
`);
db.prepare("INSERT INTO dbcrypt_keys (number, active_key_digest, test) VALUES (1, ?, ?)").run(keyId, seal("coder"));

const uuid = (prefix, n) => `${prefix}${n.toString(16).padStart(8, "0")}-0000-4000-8000-000000000000`.slice(0, 36);
const insertUser = db.prepare("INSERT INTO users (id, username, is_system, deleted) VALUES (?, ?, ?, ?)");
const insertLink = db.prepare("INSERT INTO user_links VALUES (?, ?, ?, ?, ?, ?, ?)");
const insertExternal = db.prepare("INSERT INTO external_auth_links VALUES (?, ?, ?, ?, ?, ?)");
const insertSsh = db.prepare("INSERT INTO gitsshkeys VALUES (?, ?, ?, ?)");
const insertSecret = db.prepare("INSERT INTO user_secrets VALUES (?, ?, ?, ?, ?)");
db.transaction(() => {
  for (let n = 0; n < 500; n++) {
    const id = uuid("a", n);
    // Every tenth user was written before encryption was switched on: their rows are plaintext.
    const plaintext = n % 10 === 0;
    const enc = (value) => (plaintext ? [value, null] : [seal(value), keyId]);
    insertUser.run(id, `user${n}`, n === 0 ? 1 : 0, n % 17 === 0 ? 1 : 0);
    insertLink.run(id, "oidc", `sub-${n}`, ...enc(`demo-access-${n}`), ...enc(n % 3 === 0 ? "" : `demo-refresh-${n}`));
    insertExternal.run("github", id, ...enc(`demo-gh-access-${n}`), ...enc(`demo-gh-refresh-${n}`));
    insertSsh.run(id, ...enc(`-----BEGIN OPENSSH PRIVATE KEY----- demo ${n}`), `ssh-ed25519 AAAA demo${n}`);
    insertSecret.run(uuid("b", n), id, "API_TOKEN", ...enc(`demo-secret-${n}`));
  }
  for (let sequence = 1; sequence <= 4; sequence++) {
    db.prepare("INSERT INTO crypto_keys VALUES (?, ?, ?, ?)").run("workspace_apps_token", sequence, seal(`demo-crypto-${sequence}`), keyId);
  }
  db.prepare("INSERT INTO crypto_keys VALUES ('tailnet_resume', 1, NULL, NULL)").run();
  db.prepare("INSERT INTO mcp_server_configs VALUES (?, ?, ?, ?, ?)").run(uuid("c", 1), seal("demo-mcp-client-secret"), keyId, "", null);
  db.prepare("INSERT INTO mcp_server_configs VALUES (?, ?, ?, ?, ?)").run(uuid("c", 2), "", null, seal("demo-mcp-api-key"), keyId);
})();
db.pragma("journal_mode = DELETE");
db.exec("VACUUM");
db.close();
console.log(`wrote ${out} (demo key id ${keyId})`);
