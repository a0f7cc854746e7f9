/**
 * The Coder cipher limit, measured in a process of its own: `node cipher-child.js VALUES SEED`
 * prints `{"ms":…,"values":…}`. In the bench process itself the loop ran up to 1.4× slower at
 * 1,000,000 rows than at 200,000 (its heap then holds the run's datasets, and every collection the
 * loop's garbage causes pays for them), which a dbcrypt process never carries. Its keys are made
 * here and never leave this process.
 */
import { tokenPlaintext } from "./dataset.js";
import { BenchKey } from "./keys.js";

const WARM_UP_VALUES = 2_000;

function main(): void {
  const [count, seed] = process.argv.slice(2).map(Number);
  if (!Number.isInteger(count) || !Number.isInteger(seed) || (count as number) < 1) throw new Error("usage: cipher-child.js VALUES SEED");
  const from = new BenchKey();
  const to = new BenchKey();
  const values = Array.from({ length: count as number }, (_, index) => from.seal(tokenPlaintext(seed as number, index + 1)));
  let checksum = 0;
  for (const value of values.slice(0, WARM_UP_VALUES)) checksum += to.seal(from.open(value)).length;
  const started = performance.now();
  for (const value of values) checksum += to.seal(from.open(value)).length;
  const ms = performance.now() - started;
  if (checksum === 0) throw new Error("cipher limit did no work");
  process.stdout.write(`${JSON.stringify({ ms, values: values.length })}\n`);
}

main();
