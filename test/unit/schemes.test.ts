/**
 * The schemes without key ids against published vectors and independent implementations:
 * libsodium's own secretbox_easy vector (reference schemes §3.4), tweetnacl and node's HMAC for
 * AtelyaOS cells in every spelling, node:crypto for Company Agents' layouts, and the trial
 * decryption that finds a value's key.
 */
import { createHmac, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { xsalsa20poly1305 } from "@noble/ciphers/salsa.js";
import { decodeCellCandidates, encodeCell, CELL_ENCODINGS } from "../../src/crypto/cell-encoding.js";
import { Keyring } from "../../src/crypto/keyring.js";
import { schemeNamed } from "../../src/crypto/schemes/registry.js";
import { DbcryptError } from "../../src/errors.js";
import { openDotted, openSecretbox, sealDotted, sealSecretbox, type Spelling } from "../support/app-crypto.js";
import { openValue, sealValue } from "../support/coder-crypto.js";

const LIBSODIUM = {
  key: "1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389",
  nonce: "69696ee955b62b73cd62bda875fc73d68219e0036b7a0b37",
  message:
    "be075fc53c81f2d5cf141316ebeb0c7b5228c52a4c62cbd44b66849b64244ffce5ecbaaf33bd751a1ac728d45e6c61296cdc3c01233561f41db66cce314adb310e3be8250c46f06dceea3a7fa1348057e2f6556ad6b1318a024a838f21af1fde048977eb48f59ffd4924ca1c60902e52f0a089bc76897040e082f937763848645e0705",
  box:
    "f3ffc7703f9400e52a7dfb4b3d3305d98e993b9f48681273c29650ba32fc76ce48332ea7164d96a4476fb8c531a1186ac0dfc17c98dce87b4da7f011ec48c97271d2c20f9b928fe2270d6fb863d51738b48eeee314a7cc8ab932164548e526ae90224368517acfeabd6bb3732bc0e9da99832b61ca01b6de56244a9e88d5f9b37973f622a43d14a6599b1f654cb45a74e355a5",
};

const MASTER_A = Buffer.alloc(32, 0xa1);
const MASTER_B = Buffer.alloc(32, 0xb2);
const WORKSPACE = "5f0c7f5e-3d1b-4b8e-9a39-0d3c2f1e7a11";

function opened(result: { ok: boolean; plaintext?: Buffer; reason?: string }): string {
  if (!result.ok) throw new Error(`expected the cell to open, got: ${result.reason}`);
  return (result.plaintext as Buffer).toString("utf8");
}

describe("secretbox-workspace (AtelyaOS)", () => {
  const scheme = schemeNamed("secretbox-workspace");

  it("opens libsodium's secretbox_easy vector, the stored cell being nonce ‖ box", () => {
    // derivation "none": the master key is the secretbox key, so the published vector applies as is.
    const direct = schemeNamed("secretbox-workspace", { derivation: "none" }).keyFromBytes(Buffer.from(LIBSODIUM.key, "hex"));
    const cell = Buffer.concat([Buffer.from(LIBSODIUM.nonce, "hex"), Buffer.from(LIBSODIUM.box, "hex")]).toString("base64");
    const result = direct.open(cell);
    expect(result.ok && result.plaintext.toString("hex")).toBe(LIBSODIUM.message);
  });

  it("noble's xsalsa20poly1305 seals the vector byte for byte (the cipher dbcrypt uses)", () => {
    const box = xsalsa20poly1305(Buffer.from(LIBSODIUM.key, "hex"), Buffer.from(LIBSODIUM.nonce, "hex")).encrypt(Buffer.from(LIBSODIUM.message, "hex"));
    expect(Buffer.from(box).toString("hex")).toBe(LIBSODIUM.box);
  });

  it.each<Spelling>(["base64", "base64url-unpadded", "hex"])("opens tweetnacl cells spelt %s under HMAC-SHA256(master, workspace id) and keeps the spelling on rewrite", (spelling) => {
    const key = scheme.keyFromBytes(MASTER_A);
    const cell = sealSecretbox(MASTER_A, WORKSPACE, "xoxb-secret-token", spelling);
    const result = key.open(cell, { workspace: WORKSPACE });
    expect(opened(result)).toBe("xoxb-secret-token");
    // As a rotation does: the column's spelling is what the census learned from its cells.
    const spelling_ = scheme.rewriteSpelling?.(cell, result.ok ? result.format : undefined, spelling);
    const resealed = key.seal("xoxb-secret-token", { workspace: WORKSPACE }, spelling_);
    expect(openSecretbox(MASTER_A, WORKSPACE, resealed)).toBe("xoxb-secret-token");
    if (spelling === "hex") expect(resealed).toMatch(/^[0-9a-f]+$/);
    if (spelling === "base64url-unpadded") expect(resealed).not.toMatch(/[+/=]/);
    if (spelling === "base64") expect(resealed).toMatch(/^[A-Za-z0-9+/]+={0,2}$/);
  });

  it("refuses a cell sealed for another workspace or under another master key, naming neither value nor key", () => {
    const key = scheme.keyFromBytes(MASTER_A);
    const cell = sealSecretbox(MASTER_A, WORKSPACE, "token");
    const otherWorkspace = key.open(cell, { workspace: "another-workspace" });
    expect(otherWorkspace.ok).toBe(false);
    expect(scheme.keyFromBytes(MASTER_B).open(cell, { workspace: WORKSPACE }).ok).toBe(false);
    const reason = otherWorkspace.ok ? "" : otherWorkspace.reason;
    expect(reason).toMatch(/authentication failed/);
    expect(reason).not.toContain("token");
    expect(key.open(cell, { workspace: null }).ok).toBe(false);
    // A row read without its context must not silently get some other key.
    expect(key.open(cell, {})).toEqual({ ok: false, reason: "the row was read without its workspace id" });
  });

  it("takes the HMAC order and the workspace id's encoding as options", () => {
    const reversed = schemeNamed("secretbox-workspace", { derivation: "hmac-sha256(workspace,master)", workspaceIdEncoding: "uuid-bytes" }).keyFromBytes(MASTER_A);
    const rowKey = createHmac("sha256", Buffer.from(WORKSPACE.replace(/-/g, ""), "hex")).update(MASTER_A).digest();
    const nonce = randomBytes(24);
    const cell = Buffer.concat([nonce, xsalsa20poly1305(rowKey, nonce).encrypt(Buffer.from("hello"))]).toString("base64");
    expect(opened(reversed.open(cell, { workspace: WORKSPACE }))).toBe("hello");
    expect(reversed.open(cell, { workspace: "not-a-uuid" })).toEqual({ ok: false, reason: "the row's workspace id is not uuid-bytes" });
    // The keys table's canary belongs to no workspace, whatever the id encoding.
    expect(reversed.open(reversed.seal("dbcrypt")).ok).toBe(true);
  });

  it("feeds HMAC the master key as the application keeps it: its bytes, or its hex or base64 text", () => {
    const hexText = schemeNamed("secretbox-workspace", { masterKeyEncoding: "hex-text" }).keyFromBytes(MASTER_A);
    const rowKey = createHmac("sha256", Buffer.from(MASTER_A.toString("hex"), "utf8")).update(WORKSPACE, "utf8").digest();
    const nonce = randomBytes(24);
    const cell = Buffer.concat([nonce, xsalsa20poly1305(rowKey, nonce).encrypt(Buffer.from("hex keyed"))]).toString("base64");
    expect(opened(hexText.open(cell, { workspace: WORKSPACE }))).toBe("hex keyed");
    expect(scheme.keyFromBytes(MASTER_A).open(cell, { workspace: WORKSPACE }).ok).toBe(false);
    expect(hexText.id).toBe(scheme.keyFromBytes(MASTER_A).id);
    expect(() => schemeNamed("secretbox-workspace", { derivation: "none", masterKeyEncoding: "hex-text" })).toThrow(/applies only to an HMAC derivation/);
  });

  it("rejects unknown options and values by name", () => {
    expect(() => schemeNamed("secretbox-workspace", { derivaton: "none" })).toThrow(/unknown option "derivaton"/);
    expect(() => schemeNamed("secretbox-workspace", { encoding: "base32" })).toThrow(DbcryptError);
  });

  it("key ids are the master key's fingerprint, not Coder's id of the same bytes", () => {
    const id = scheme.keyFromBytes(MASTER_A).id;
    expect(id).toMatch(/^[0-9a-f]{7}$/);
    expect(id).not.toBe(schemeNamed("coder").keyFromBytes(MASTER_A).id);
  });
});

describe("aes256gcm-master (Company Agents)", () => {
  it("reads and writes nonce ‖ ciphertext ‖ tag in standard base64, as an independent node:crypto oracle does", () => {
    const key = schemeNamed("aes256gcm-master").keyFromBytes(MASTER_A);
    expect(opened(key.open(sealValue(MASTER_A, "sk_live_123")))).toBe("sk_live_123");
    const cell = key.seal("sk_live_123");
    expect(openValue(MASTER_A, cell)).toBe("sk_live_123");
    expect(key.id).toBe(schemeNamed("coder").keyFromBytes(MASTER_A).id);
  });

  it("reads and writes the dotted layout b64(nonce).b64(ciphertext ‖ tag)", () => {
    const key = schemeNamed("aes256gcm-master", { layout: "dotted" }).keyFromBytes(MASTER_A);
    expect(opened(key.open(sealDotted(MASTER_A, "ghp_abc")))).toBe("ghp_abc");
    expect(openDotted(MASTER_A, key.seal("ghp_abc"))).toBe("ghp_abc");
    expect(key.open("not.dotted").ok).toBe(false);
    expect(() => schemeNamed("aes256gcm-master", { layout: "dotted", encoding: "hex" })).toThrow(/does not apply/);
  });
});

describe("secretbox tag check without decrypting", () => {
  it("agrees with opening on valid, tampered, wrong-key and wrong-workspace cells", () => {
    const scheme = schemeNamed("secretbox-workspace");
    const key = scheme.keyFromBytes(MASTER_A);
    for (let round = 0; round < 200; round++) {
      const cell = Buffer.from(sealSecretbox(MASTER_A, WORKSPACE, `value ${round} ${"z".repeat(round % 50)}`), "base64");
      const tampered = Buffer.from(cell);
      const position = 24 + (round % (tampered.length - 24));
      tampered[position] = (tampered[position] as number) ^ 1;
      for (const [text, context, expected] of [
        [cell.toString("base64"), { workspace: WORKSPACE }, true],
        [tampered.toString("base64"), { workspace: WORKSPACE }, false],
        [cell.toString("base64"), { workspace: "elsewhere" }, false],
      ] as const) {
        expect(key.verify?.(text, context).ok, `round ${round}`).toBe(expected);
        expect(key.open(text, context).ok, `round ${round}`).toBe(expected);
      }
      expect(scheme.keyFromBytes(MASTER_B).verify?.(cell.toString("base64"), { workspace: WORKSPACE }).ok).toBe(false);
    }
  });
});

describe("trial decryption", () => {
  const scheme = schemeNamed("secretbox-workspace");

  it("finds the key that opens a cell, whichever order the keys were given in", () => {
    const keyA = scheme.keyFromBytes(MASTER_A);
    const keyB = scheme.keyFromBytes(MASTER_B);
    const keyring = new Keyring(keyB, [keyA]);
    for (let round = 0; round < 3; round++) {
      const found = keyring.openByTrial(sealSecretbox(MASTER_A, WORKSPACE, `v${round}`), { workspace: WORKSPACE });
      expect(found.key?.id).toBe(keyA.id);
    }
    const missing = new Keyring(keyB, []).openByTrial(sealSecretbox(MASTER_A, WORKSPACE, "v"), { workspace: WORKSPACE });
    expect(missing.key).toBeUndefined();
  });

  it("tells ciphertext from plaintext by shape", () => {
    expect(scheme.looksSealed?.(sealSecretbox(MASTER_A, WORKSPACE, "x"))).toBe(true);
    expect(scheme.looksSealed?.("hello world")).toBe(false);
    expect(scheme.looksSealed?.("")).toBe(false);
    // Line-wrapped or newline-terminated ciphertext is still ciphertext: never sealed a second time.
    const cell = sealSecretbox(MASTER_A, WORKSPACE, "x".repeat(60));
    expect(scheme.looksSealed?.(`${cell}\n`)).toBe(true);
    expect(scheme.looksSealed?.(`${cell.slice(0, 40)}\n${cell.slice(40)}`)).toBe(true);
    expect(scheme.keyFromBytes(MASTER_A).open(`${cell}\r\n`, { workspace: WORKSPACE }).ok).toBe(true);
  });
});

describe("a column's spelling", () => {
  const scheme = schemeNamed("secretbox-workspace");
  const learn = (cells: { text: string; opened?: string }[]) => {
    const tally = new Map<string, number>();
    for (const cell of cells) for (const token of scheme.spellingEvidence?.(cell.text, cell.opened) ?? []) tally.set(token, (tally.get(token) ?? 0) + 1);
    return scheme.columnSpelling?.(tally);
  };

  it("is learned only from cells that tell spellings apart, and hex only from tag-confirmed readings", () => {
    const hexCells = Array.from({ length: 5 }, () => ({ text: randomBytes(48).toString("hex"), opened: "hex" }));
    expect(learn(hexCells)).toBe("hex");
    // Without keys nothing confirms hex, and hex text tells nothing about base64: the default stays.
    expect(learn(hexCells.map((cell) => ({ text: cell.text })))).toBe("base64");
    const urlCells = Array.from({ length: 50 }, () => ({ text: randomBytes(50).toString("base64url"), opened: "base64url-unpadded" }));
    expect(learn(urlCells)).toBe("base64url-unpadded");
    const standardCells = Array.from({ length: 50 }, () => ({ text: randomBytes(50).toString("base64"), opened: "base64" }));
    expect(learn(standardCells)).toBe("base64");
  });

  it("a rewrite keeps a hex reading and what the old cell's own text shows, and fills the rest from the column", () => {
    expect(scheme.rewriteSpelling?.("ab".repeat(40), "hex", "base64")).toBe("hex");
    expect(scheme.rewriteSpelling?.("abc-de", "base64url-unpadded", "base64")).toBe("base64url-unpadded");
    expect(scheme.rewriteSpelling?.("abc-def_", "base64url-unpadded", "base64")).toBe("base64url");
    expect(scheme.rewriteSpelling?.("abcdefgh", "base64", "base64url-unpadded")).toBe("base64url-unpadded");
    expect(scheme.rewriteSpelling?.(null, undefined, "hex")).toBe("hex");
  });
});

describe("cell encodings", () => {
  it("reads every spelling it writes, canonically, and nothing else", () => {
    for (let length = 0; length < 70; length += 7) {
      const bytes = randomBytes(length);
      for (const encoding of CELL_ENCODINGS) {
        const text = encodeCell(bytes, encoding);
        if (text === "") continue;
        const candidates = decodeCellCandidates(text, 0);
        expect(candidates.some((candidate) => candidate.bytes.equals(bytes))).toBe(true);
        for (const candidate of candidates) expect(encodeCell(candidate.bytes, candidate.encoding)).toBe(text);
      }
    }
    expect(decodeCellCandidates("ab+c-d==", 0)).toEqual([]);
    expect(decodeCellCandidates("abd=", 0)).toEqual([]);
  });
});
