import type { TableConfig } from "./config-file.js";

/**
 * What dbcrypt knows of applications whose cells carry no key id, as config-file fragments: the
 * scheme and the tables and columns their documentation names. A preset is a starting point that
 * is confirmed against the catalog at run time: a listed table or column the database lacks is
 * reported as a warning, never guessed at, and the config file's own entries win over the preset's.
 */
export interface AppPreset {
  scheme: string;
  /** Where the table and column names come from, for docs and warnings. */
  source: string;
  tables: Record<string, TableConfig>;
}

const workspace = { workspace: "workspace_id" };

export const APP_PRESETS: Readonly<Record<"atelyaos" | "company-agents", AppPreset>> = {
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
};
