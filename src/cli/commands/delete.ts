import type { Command } from "commander";
import { deleteOperation } from "../../ops/delete.js";
import { addWriteOptions, runWriteCommand, type WriteFlags } from "../common.js";
import type { CommandOutcome } from "../exit-codes.js";

export function registerDelete(program: Command, run: (body: () => Promise<CommandOutcome>) => Promise<void>): void {
  addWriteOptions(
    program
      .command("delete")
      .alias("rm")
      .description("disaster recovery for a lost key: delete or clear every encrypted value, then revoke all keys"),
  ).action((flags: WriteFlags) =>
    run(async () => {
      return runWriteCommand(flags, "delete", deleteOperation, (request) => request);
    }),
  );
}
