import type { TableConfig } from "./config-file.js";

/**
 * What dbcrypt knows of applications whose cells carry no key id, as config-file fragments: the
 * scheme and the tables and columns their documentation names. A preset is a starting point that
 * is confirmed against the catalog at run time: a listed table or column the database lacks is
 * reported as a warning, never guessed at, and the config file's own entries win over the preset's.
 */
export interface AppPreset {
  scheme: string;
  /** Options for the scheme; the config file's schemeOptions win over them. */
  schemeOptions?: Record<string, unknown>;
  /** Where the table and column names come from, for docs and warnings. */
  source: string;
  tables: Record<string, TableConfig>;
}

const workspace = { workspace: "workspace_id" };

/** Obot's tables: every one has a boolean `encrypted` column; the AAD strings are Obot's (shared/reference/schemes.md §2.3). */
const obotTable = (resource: string, aad: string, columns: string[], keepEmpty = false): TableConfig => ({
  resource: `${resource}.obot.obot.ai`,
  rowFlag: "encrypted",
  aad,
  deletePolicy: "delete-row",
  columns: Object.fromEntries(columns.map((column) => [column, keepEmpty ? { keepPlaintext: "empty" as const } : {}])),
});

export const APP_PRESETS: Readonly<Record<"atelyaos" | "company-agents" | "obot", AppPreset>> = {
  // AtelyaOS's security page names these three columns; its other encrypted columns (MCP server
  // config, WhatsApp tokens, A2A payloads, Meta tokens) are not named there: list them in the config.
  atelyaos: {
    scheme: "secretbox-workspace",
    source: "AtelyaOS docs, Security → Encryption (shared/seeds/001)",
    tables: {
      messages: { columns: { content_encrypted: {} }, context: workspace, deletePolicy: "delete-row" },
      integrations: { columns: { access_token_encrypted: {} }, context: workspace, deletePolicy: "delete-row" },
      webhook_bridges: { columns: { api_key_encrypted: {} }, context: workspace, deletePolicy: "delete-row" },
    },
  },
  "company-agents": {
    scheme: "aes256gcm-master",
    source: "Company Agents docs, the encrypted secret store (shared/seeds/002)",
    tables: {
      secrets: { columns: { value: {} }, deletePolicy: "delete-row" },
    },
  },
  // obot-platform/obot pkg/gateway/client and types (gorm's default table names). Audit-log and
  // policy-violation fields are skipped when empty, so '' stays as it is there.
  obot: {
    scheme: "k8s-encryption-config",
    source: "obot-platform/obot pkg/gateway (shared/reference/schemes.md §2.3)",
    tables: {
      credentials: { ...obotTable("credentials", "{name}///{context}", []), columns: { secrets: { cellFormat: "json-envelope" } } },
      users: obotTable("users", "users.obot.obot.ai/{hashed_username}", ["username", "email", "icon_url", "display_name", "original_email", "original_username"]),
      identities: obotTable("identities", "identities.obot.obot.ai/{auth_provider_namespace}/{auth_provider_name}/{hashed_provider_user_id}", ["provider_username", "email", "provider_user_id", "provider_group_lookup_id", "icon_url"]),
      mcpo_auth_tokens: obotTable("mcpoauthtokens", "mcpoauthtokens.obot.obot.ai/{mcp_id}", ["access_token", "refresh_token", "client_id", "client_secret"]),
      mcpo_auth_pending_states: obotTable("mcpoauthpendingstates", "mcpoauthpendingstates.obot.obot.ai/{mcp_id}", ["state", "verifier", "client_id", "client_secret"]),
      llm_audit_logs: obotTable("llmauditlogs", "llmauditlogs.obot.obot.ai/{id}/{user_id}", ["request_headers", "request_body", "policy_modified_request_body", "response_headers", "response_body"], true),
      properties: obotTable("properties", "properties.obot.obot.ai/{key}", ["value"]),
    },
  },
};

/** The application preset of that name, if it is one (not auto, coder or none). */
export function appPresetNamed(name: string | undefined): AppPreset | undefined {
  return name !== undefined && Object.hasOwn(APP_PRESETS, name) ? APP_PRESETS[name as keyof typeof APP_PRESETS] : undefined;
}
