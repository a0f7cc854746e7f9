import type { DeletePolicy, PlaintextRule } from "./model.js";

/**
 * Coder's own write rules (reference §3.3) and delete behaviour (§5.7), including the tables Coder's
 * CLI forgets (crypto_keys and the MCP tables, coder/coder#25381), where we follow the closed fix
 * PR #28341: clear crypto_keys.secret, blank MCP config secrets in place, delete MCP user tokens.
 */
export interface PresetTableRules {
  deletePolicy: DeletePolicy;
  keepPlaintext?: Record<string, PlaintextRule>;
  clearTo?: Record<string, string | null>;
}

const deleteRow: DeletePolicy = { action: "delete-row" };
const clear: DeletePolicy = { action: "clear", setTimestampColumns: [] };

export const CODER_PRESET: Readonly<Record<string, PresetTableRules>> = {
  user_links: { deletePolicy: deleteRow },
  external_auth_links: { deletePolicy: deleteRow },
  user_secrets: { deletePolicy: deleteRow },
  user_ai_provider_keys: { deletePolicy: deleteRow, keepPlaintext: { api_key: "blank" } },
  user_chat_provider_keys: { deletePolicy: deleteRow, keepPlaintext: { api_key: "blank" } },
  ai_provider_keys: { deletePolicy: deleteRow, keepPlaintext: { api_key: "blank" } },
  chat_mcp_servers: { deletePolicy: deleteRow, keepPlaintext: { headers: "blank-or-empty-object" } },
  mcp_server_user_tokens: {
    deletePolicy: deleteRow,
    keepPlaintext: { access_token: "blank", refresh_token: "blank" },
  },
  workspace_secrets: {
    deletePolicy: { action: "clear", setTimestampColumns: ["cleared_at"] },
    clearTo: { value: null },
  },
  gitsshkeys: { deletePolicy: clear, keepPlaintext: { private_key: "empty" }, clearTo: { private_key: "" } },
  ai_providers: {
    deletePolicy: clear,
    keepPlaintext: { settings: "blank", api_key: "blank" },
    clearTo: { settings: null, api_key: null },
  },
  crypto_keys: { deletePolicy: clear, clearTo: { secret: null } },
  mcp_server_configs: {
    deletePolicy: clear,
    keepPlaintext: {
      oauth2_client_secret: "blank",
      api_key_value: "blank",
      custom_headers: "blank",
      signing_secret: "blank",
    },
    clearTo: { oauth2_client_secret: "", api_key_value: "", custom_headers: "{}", signing_secret: "" },
  },
};

/** Tables whose presence (with key-id foreign keys) marks a database as Coder's. */
export const CODER_MARKER_TABLES = ["user_links", "external_auth_links", "gitsshkeys"];
