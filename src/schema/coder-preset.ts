import type { DeletePolicy, PlaintextRule } from "./model.js";

/**
 * Coder's own write rules and delete behaviour, table by table.
 *
 * Write rules come from the wrappers in Coder's enterprise/dbcrypt/dbcrypt.go: a column whose
 * Insert/Update/Upsert wrapper tests `strings.TrimSpace(v) == ""` before encryptField keeps blank
 * values as plaintext with a NULL key id ("blank"); a column whose wrapper calls encryptField
 * unconditionally encrypts even '' ("never"). Delete follows Coder's `server dbcrypt delete`
 * (cliutil.go, reference §5.7) and, for the tables Coder's CLI forgets (coder/coder#25381), the
 * closed fix PR #28341: clear crypto_keys.secret, blank MCP config secrets in place, delete MCP
 * user tokens. docs/config.md has the same table with the source of every rule.
 */
export interface PresetTableRules {
  /**
   * Every encrypted column Coder has had in this table, in any version the preset knows, whether
   * or not its rules differ from the defaults. A discovered column not listed here gets a warning
   * in the plan: Coder adds encrypted columns often, and their blank rule must not be guessed.
   */
  columns: readonly string[];
  deletePolicy: DeletePolicy;
  keepPlaintext?: Record<string, PlaintextRule>;
  clearTo?: Record<string, string | null>;
}

const deleteRow: DeletePolicy = { action: "delete-row" };
const clear: DeletePolicy = { action: "clear", setTimestampColumns: [] };

export const CODER_PRESET: Readonly<Record<string, PresetTableRules>> = {
  // InsertUserLink, UpdateUserLink: encryptField always. Delete: DELETE row.
  user_links: { columns: ["oauth_access_token", "oauth_refresh_token"], deletePolicy: deleteRow },
  // InsertExternalAuthLink, UpdateExternalAuthLink, UpdateExternalAuthLinkRefreshToken: always
  // (an empty refresh token is encrypted too). Delete: DELETE row.
  external_auth_links: { columns: ["oauth_access_token", "oauth_refresh_token"], deletePolicy: deleteRow },
  // CreateUserSecret, UpdateUserSecretByUserIDAndName (when UpdateValue): always. Delete: DELETE row.
  user_secrets: { columns: ["value"], deletePolicy: deleteRow },
  // UpsertUserAIProviderKey, UpdateUserAIProviderKey, UpdateEncryptedUserAIProviderKey:
  // TrimSpace == "" stays plaintext. Delete: DELETE row.
  user_ai_provider_keys: { columns: ["api_key"], deletePolicy: deleteRow, keepPlaintext: { api_key: "blank" } },
  // UpsertUserChatProviderKey, UpdateUserChatProviderKey (the chat-provider era, before the move to
  // user_ai_provider_keys): blank as in their successors; CHECK (api_key <> '') rules out ''. The
  // CHECK also rules out clearing, so delete removes the row, as Coder does for the successor.
  user_chat_provider_keys: { columns: ["api_key"], deletePolicy: deleteRow, keepPlaintext: { api_key: "blank" } },
  // InsertAIProviderKey, UpdateEncryptedAIProviderKey: blank. Delete: DELETE row.
  ai_provider_keys: { columns: ["api_key"], deletePolicy: deleteRow, keepPlaintext: { api_key: "blank" } },
  // Blank or '{}' is stored as '{}' with a NULL key id (reference §3.3). Delete: DELETE row.
  chat_mcp_servers: { columns: ["headers"], deletePolicy: deleteRow, keepPlaintext: { headers: "blank-or-empty-object" } },
  // UpsertMCPServerUserToken, UpdateMCPServerUserTokenFromRefresh: blank, each token on its own.
  // Delete: DELETE row (PR #28341; not handled by Coder's CLI, #25381).
  mcp_server_user_tokens: {
    columns: ["access_token", "refresh_token"],
    deletePolicy: deleteRow,
    keepPlaintext: { access_token: "blank", refresh_token: "blank" },
  },
  // NULL value: NULL key id; every other value encrypted. Delete: value := NULL, cleared_at := now.
  workspace_secrets: {
    columns: ["value"],
    deletePolicy: { action: "clear", setTimestampColumns: ["cleared_at"] },
    clearTo: { value: null },
  },
  // InsertGitSSHKey, UpdateGitSSHKey: always; but Coder's rotate skips private_key = '' (a row a
  // delete cleared, kept so the user can regenerate), so '' stays. Delete: private_key := ''.
  gitsshkeys: { columns: ["private_key"], deletePolicy: clear, keepPlaintext: { private_key: "empty" }, clearTo: { private_key: "" } },
  // InsertAIProvider, UpdateAIProvider, UpdateEncryptedAIProviderSettings (encryptAIProviderSettings):
  // NULL or blank settings become NULL with a NULL key id. api_key: the original ai_providers
  // migration (reference §3.2), blank. Delete: settings := NULL.
  ai_providers: {
    columns: ["settings", "api_key"],
    deletePolicy: clear,
    keepPlaintext: { settings: "blank", api_key: "blank" },
    clearTo: { settings: null, api_key: null },
  },
  // InsertCryptoKey: always (a NULL secret stays NULL). Delete: secret := NULL (PR #28341).
  crypto_keys: { columns: ["secret"], deletePolicy: clear, clearTo: { secret: null } },
  // InsertMCPServerConfig, UpdateMCPServerConfig: blank for each secret, custom_headers included
  // ('{}' is not blank and is encrypted). signing_secret was added later with the same rule.
  // Delete: blank in place (PR #28341), custom_headers to its column default '{}'.
  mcp_server_configs: {
    columns: ["oauth2_client_secret", "api_key_value", "custom_headers", "signing_secret"],
    deletePolicy: clear,
    keepPlaintext: {
      oauth2_client_secret: "blank",
      api_key_value: "blank",
      custom_headers: "blank",
      signing_secret: "blank",
    },
    clearTo: { oauth2_client_secret: "", api_key_value: "", custom_headers: "{}", signing_secret: "" },
  },
  // InsertChatProvider, UpdateChatProvider: TrimSpace(api_key) == "" stays plaintext with a NULL
  // key id (a later migration copies provider keys WHERE api_key != ''). Delete: api_key := '', the
  // value Coder writes for "no key", keeping the provider row (models and user keys refer to it).
  chat_providers: { columns: ["api_key"], deletePolicy: clear, keepPlaintext: { api_key: "blank" }, clearTo: { api_key: "" } },
  // InsertChatAutomationTrigger, UpdateChatAutomationTriggerWebhookSecret: NULL or blank secret
  // gets a NULL key id. Coder's CLI has no delete rule for it; dbcrypt deletes the trigger (its
  // events keep their rows, trigger_id is SET NULL) rather than leave a webhook trigger without a
  // secret, which could fail open.
  chat_automation_triggers: { columns: ["webhook_secret"], deletePolicy: deleteRow, keepPlaintext: { webhook_secret: "blank" } },
};

/** Tables whose presence (with key-id foreign keys) marks a database as Coder's. */
export const CODER_MARKER_TABLES = ["user_links", "external_auth_links", "gitsshkeys"];
