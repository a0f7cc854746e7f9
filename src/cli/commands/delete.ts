import type { Command } from "commander";
import { deleteEncrypted } from "../../ops/delete.js";
import { addWriteOptions, printResult, readOnlyFor, withSession, writeRequest, type WriteFlags } from "../common.js";
import { StopController } from "../stop.js";

export function registerDelete(program: Command, run: (body: () => Promise<number>) => Promise<void>): void {
  addWriteOptions(
    program
      .command("delete")
      .alias("rm")
      .description("disaster recovery for a lost key: delete or clear every encrypted value, then revoke all keys"),
  ).action((flags: WriteFlags) =>
    run(async () => {
      const stop = new StopController();
      stop.install();
      const { request, close } = writeRequest(flags, "delete", stop);
      try {
        const result = await withSession(flags, "delete", readOnlyFor(flags), (session) => deleteEncrypted(session, request));
        return printResult(flags, result);
      } finally {
        close();
        stop.uninstall();
      }
    }),
  );
}
