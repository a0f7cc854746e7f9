import { DbcryptError } from "../../errors.js";
import { aes256gcmMasterFactory } from "./aes256gcm-master.js";
import { coderScheme } from "./coder-aes256gcm.js";
import { kubernetesFactory } from "./kubernetes.js";
import { secretboxWorkspaceFactory } from "./secretbox-workspace.js";
import type { SchemeFactory, ValueScheme } from "./value-scheme.js";

/** The value schemes dbcrypt knows, by name. A new scheme is one file and one line here. */
const factories = new Map<string, SchemeFactory>();

export const DEFAULT_SCHEME = coderScheme;

/** A scheme that takes no options, as a factory that refuses any. */
function fixed(scheme: ValueScheme, summary: string): SchemeFactory {
  return {
    name: scheme.name,
    summary,
    create(options, origin) {
      if (options !== undefined && Object.keys(options).length > 0) {
        throw new DbcryptError("bad_config", `${origin}: value scheme "${scheme.name}" takes no options`, { hint: "remove schemeOptions from the config file" });
      }
      return scheme;
    },
  };
}

export function registerSchemeFactory(factory: SchemeFactory): void {
  factories.set(factory.name, factory);
}

/** For schemes defined outside src/ (the test suite's toy scheme is loaded this way). */
export function registerScheme(scheme: ValueScheme): void {
  registerSchemeFactory(fixed(scheme, "registered by a plugin"));
}

registerSchemeFactory(fixed(coderScheme, "Coder dbcrypt: base64(nonce ‖ AES-256-GCM ciphertext ‖ tag), key id in <column>_key_id"));
registerSchemeFactory(secretboxWorkspaceFactory);
registerSchemeFactory(aes256gcmMasterFactory);
registerSchemeFactory(kubernetesFactory);

export function knownSchemes(): string[] {
  return [...factories.keys()];
}

export function schemeNamed(name: string, options?: Readonly<Record<string, unknown>>, origin = "config"): ValueScheme {
  const factory = factories.get(name);
  if (factory === undefined) {
    throw new DbcryptError("bad_config", `unknown value scheme "${name}"`, { hint: `known schemes: ${knownSchemes().join(", ")}` });
  }
  return factory.create(options, origin);
}
