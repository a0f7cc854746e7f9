/**
 * The worker-thread planner must decide exactly what the main-thread planner decides for every
 * row (write, skip, or fail with the same reason), and its ciphertexts must open to the same
 * plaintext. Runs the built worker (dist/), as the CLI does.
 */
import { afterAll, describe, expect, it } from "vitest";
import type { BatchRow } from "../../src/db/dialect.js";
import type { EncryptedTable } from "../../src/schema/model.js";
import { openValue, randomKey, sealValue } from "../support/coder-crypto.js";

// The built modules, because the pool starts dist/ops/crypto-worker.js beside its own file.
const built = (module: string): Promise<unknown> => import(new URL(`../../dist/${module}`, import.meta.url).href);
const { EncryptionKey } = (await built("crypto/encryption-key.js")) as typeof import("../../src/crypto/encryption-key.js");
const { coderScheme } = (await built("crypto/schemes/coder-aes256gcm.js")) as typeof import("../../src/crypto/schemes/coder-aes256gcm.js");
const { InlinePlanner, WorkerPoolPlanner } = (await built("ops/batch-planner.js")) as typeof import("../../src/ops/batch-planner.js");
const { decryptTransform, rotateTransform } = (await built("ops/row-transform.js")) as typeof import("../../src/ops/row-transform.js");

const oldKey = randomKey();
const newKey = randomKey();
const productOld = EncryptionKey.parse(oldKey.base64, "old");
const productNew = EncryptionKey.parse(newKey.base64, "new");

const table: EncryptedTable = {
  ref: { schema: undefined, name: "t" },
  rowKey: ["id"],
  rowKeyTypes: ["INTEGER"],
  columns: [
    { column: "a", keyIdColumn: "a_key_id", keepPlaintext: "never", clearTo: null, source: "foreign-key" },
    { column: "b", keyIdColumn: "b_key_id", keepPlaintext: "blank", clearTo: "", source: "foreign-key" },
  ],
  context: [],
  deletePolicy: { action: "delete-row" },
};

function rows(count: number): BatchRow[] {
  return Array.from({ length: count }, (_, index) => {
    const kind = index % 5;
    const a = kind === 0 ? { value: `plain-${index}`, keyId: null }
      : kind === 1 ? { value: sealValue(oldKey.bytes, `old-${index}`), keyId: oldKey.id }
      : kind === 2 ? { value: sealValue(newKey.bytes, `new-${index}`), keyId: newKey.id }
      : kind === 3 ? { value: "not base64!", keyId: oldKey.id }
      : { value: null, keyId: null };
    const b = index % 2 === 0 ? { value: "   ", keyId: null } : { value: sealValue(oldKey.bytes, `b-${index}`), keyId: oldKey.id };
    return { rowKey: [BigInt(index)], fields: [a, b] };
  });
}

describe("crypto worker threads", () => {
  const pool = new WorkerPoolPlanner(rotateTransform(coderScheme, productNew, [productOld]), 2);
  afterAll(() => pool.close());

  it("plan rotation exactly as the main thread does, across concurrent batches", async () => {
    const inline = new InlinePlanner(rotateTransform(coderScheme, productNew, [productOld]));
    const batches = [rows(300), rows(301), rows(302)];
    const fromWorkers = await Promise.all(batches.map((batch) => pool.plan(table, batch)));
    for (const [index, batch] of batches.entries()) {
      const fromMain = await inline.plan(table, batch);
      const workerPlans = fromWorkers[index]!;
      expect(workerPlans.map((plan) => plan.kind)).toEqual(fromMain.map((plan) => plan.kind));
      workerPlans.forEach((plan, row) => {
        const mainPlan = fromMain[row]!;
        if (plan.kind === "fail" && mainPlan.kind === "fail") expect(plan.failure).toEqual(mainPlan.failure);
        if (plan.kind === "write" && mainPlan.kind === "write") {
          expect(plan.changedValues).toBe(mainPlan.changedValues);
          plan.next.forEach((field, column) => {
            const expected = mainPlan.next[column]!;
            expect(field.keyId).toBe(expected.keyId);
            if (field.keyId === newKey.id) expect(openValue(newKey.bytes, field.value as string)).toBe(openValue(newKey.bytes, expected.value as string));
            else expect(field.value).toBe(expected.value);
          });
        }
      });
    }
    expect(fromWorkers.flat().filter((plan) => plan.kind === "fail")).toHaveLength(60 + 60 + 60);
  });

  it("decrypt in a worker gives the plaintext", async () => {
    const decryptPool = new WorkerPoolPlanner(decryptTransform(coderScheme, [productOld, productNew]), 1);
    try {
      const plans = await decryptPool.plan(table, rows(10));
      const second = plans[1]!;
      expect(second.kind).toBe("write");
      if (second.kind === "write") expect(second.next[0]).toEqual({ value: "old-1", keyId: null });
    } finally {
      await decryptPool.close();
    }
  });
});

describe("crypto worker threads on a scheme that keys each row by its context (AtelyaOS)", async () => {
  const { schemeNamed } = (await built("crypto/schemes/registry.js")) as typeof import("../../src/crypto/schemes/registry.js");
  const { TRIAL_KEY_ID } = (await built("crypto/keyring.js")) as typeof import("../../src/crypto/keyring.js");
  const { openSecretbox, sealSecretbox } = await import("../support/app-crypto.js");
  const scheme = schemeNamed("secretbox-workspace");
  const workspaceTable: EncryptedTable = { ...table, columns: [{ column: "a", keyIdColumn: undefined, keepPlaintext: "never", clearTo: null, source: "config" }], context: [{ input: "workspace", column: "workspace_id" }] };

  it("reads and seals each row under its own workspace's key, as the main thread does", async () => {
    const batch: BatchRow[] = Array.from({ length: 40 }, (_, index) => {
      const workspace = `ws-${index % 4}`;
      const value = index % 2 === 0 ? sealSecretbox(oldKey.bytes, workspace, `secret ${index}`) : `plain ${index}`;
      return { rowKey: [BigInt(index)], fields: [{ value, keyId: index % 2 === 0 ? TRIAL_KEY_ID : null }], context: { workspace } };
    });
    const pool = new WorkerPoolPlanner(rotateTransform(scheme, productNew, [productOld]), 1);
    try {
      const plans = await pool.plan(workspaceTable, batch);
      plans.forEach((plan, index) => {
        expect(plan.kind, `row ${index}`).toBe("write");
        if (plan.kind !== "write") return;
        const expected = index % 2 === 0 ? `secret ${index}` : `plain ${index}`;
        expect(openSecretbox(newKey.bytes, `ws-${index % 4}`, plan.next[0]?.value as string)).toBe(expected);
        expect(openSecretbox(newKey.bytes, "", plan.next[0]?.value as string)).toBeUndefined();
      });
    } finally {
      await pool.close();
    }
  });
});
