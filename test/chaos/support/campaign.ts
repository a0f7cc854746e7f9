/**
 * One Coder-shaped database, one operation at a time (rotate, decrypt, encrypt, delete), hurt at
 * random points — SIGKILL, a dropped connection through the proxy, or the proxy turning into a
 * black hole (no reset, no answer) — and re-run until it is done.
 * After every fault the oracle (coder-state.ts) must find every value intact, every key id active,
 * and every row either untouched or completely processed; after the final run, every row done.
 */
import { expect } from "vitest";
import type { TestKey } from "../../support/coder-crypto.js";
import { freshKey } from "../../support/fixtures.js";
import type { TestDb } from "../../support/test-db.js";
import { firstErrorLine, sleep, startCli, type CliEvent, type FinishedRun, type RunningCli } from "./cli-process.js";
import { afterDelete, checkTransition, inspectCoder, pendingValues, type DataState, type Inspection, type Operation, type SeededValues, type StoredRow } from "./coder-state.js";
import { Random } from "./random.js";
import { seedChaosDatabase } from "./seeding.js";
import { chaos } from "./settings.js";
import type { CuttableProxy } from "./tcp-proxy.js";

export type FaultKind = "kill" | "cut" | "blackhole";

export interface CampaignContext {
  db: TestDb;
  /** --db for the CLI when no fault is planned. */
  directUrl: string;
  seeded: SeededValues;
  keys: Map<string, TestKey>;
  random: Random;
  fault: FaultKind;
  /** Required for "cut" and "blackhole": the faulted runs go through it. */
  proxy?: CuttableProxy;
  /** Flags added to every run of the campaign (the black hole's short client timeouts). */
  extraArgs?: readonly string[];
  /** "blackhole": the longest a faulted run may take to end after the fault, in ms. */
  maxEndAfterFaultMs?: number;
  batchSizes: readonly number[];
  /** Learnt as the campaign goes: how long a run takes to reach its first batch, and one batch. */
  estimates: { firstBatchMs: number; batchMs: number };
}

export interface PhaseSpec {
  name: string;
  operation: Operation;
  /** The command and its key flags, without --db and --batch-size. */
  args: string[];
  faults: number;
  /**
   * The campaign's last phase: no fault is aimed at its census-and-revoke end, where the run may
   * finish first, because no later phase could take over a fault it misses.
   */
  last?: boolean;
  /** Crypto worker threads for every run of the phase; by default a random choice per run. */
  cryptoThreads?: number;
  /** The keys table once the phase is done. */
  finalActive: string[];
  finalRevoked: string[];
}

export interface FaultRecord {
  phase: string;
  /** How the moment was chosen. */
  trigger: "early" | "walk" | "end";
  /** Where the run was when the fault came, judged from the events it had printed. */
  landed: string;
  batchSize: number;
  cryptoThreads: number;
  outcome: string;
  /** Cuts and black holes: the kind of statement the lost connection interrupted. */
  interrupted?: string;
  /** Black holes: how long the run took to end after the fault. */
  endedAfterFaultMs?: number;
}

export interface PhaseFigures {
  phase: string;
  faults: number;
  runs: number;
  /** Runs that finished on their own before the planned fault came. */
  finishedBeforeFault: number;
  /** Re-runs that found the previous run's lock still held for a moment (PostgreSQL), and waited. */
  lockStillHeld: number;
  valuesChecked: number;
  records: FaultRecord[];
}

export async function runPhase(context: CampaignContext, spec: PhaseSpec): Promise<PhaseFigures> {
  const { random } = context;
  const before = await inspectOrThrow(context, undefined, `${spec.name}: before the first run`);
  const figures: PhaseFigures = { phase: spec.name, faults: 0, runs: 0, finishedBeforeFault: 0, lockStillHeld: 0, valuesChecked: before.values, records: [] };
  let latest = before;
  for (let attempt = 0; figures.faults < spec.faults && attempt < spec.faults * 4; attempt++) {
    await quiesce(context);
    const pending = pendingValues(spec.operation, context.seeded, latest.state);
    const faultsLeft = spec.faults - figures.faults;
    const batchSize = chooseBatchSize(random, context.batchSizes, pending, faultsLeft);
    const trigger = chooseTrigger(random, pending, faultsLeft, spec.last === true);
    const url = context.fault === "kill" ? context.directUrl : (context.proxy as CuttableProxy).urlFor(context.directUrl);
    // Now and then with crypto worker threads, so that pipeline is killed and cut too.
    const threads = spec.cryptoThreads ?? random.pick([0, 0, 1, 2]);
    const run = startCli([...spec.args, ...(context.extraArgs ?? []), "--db", url, "--batch-size", String(batchSize), "--json-events", ...(threads > 0 ? ["--crypto-threads", String(threads)] : [])], { hungAfterMs: 120_000 });
    figures.runs++;
    const injected = await injectFault(context, run, trigger, pending, faultsLeft);
    const finished = await run.done;
    const endedAfterFaultMs = injected === undefined ? undefined : run.startedAt + finished.elapsedMs - injected.at;
    // The partition ends: what was held is closed, as the server's keepalive would close it.
    if (context.fault === "blackhole") (context.proxy as CuttableProxy).heal();
    learn(context, finished);
    const landed = injected === undefined ? "(none: the run finished first)" : landedAt(injected.eventsSeen);
    const outcome = judgeFaultedRun(context, spec, finished, injected);
    if (outcome === "lock-held") {
      figures.lockStillHeld++;
      continue;
    }
    if (outcome === "faulted") figures.faults++;
    else figures.finishedBeforeFault++;
    if (context.fault === "blackhole" && outcome === "faulted") {
      expect(endedAfterFaultMs, `${spec.name}: a black-holed run must end within its client timeouts`).toBeLessThanOrEqual(context.maxEndAfterFaultMs ?? Infinity);
    }
    const networkFault = context.fault !== "kill" && outcome === "faulted";
    figures.records.push({
      phase: spec.name, trigger, landed, batchSize, cryptoThreads: threads,
      outcome: outcome === "faulted" ? describeOutcome(context, finished) : "finished before the fault",
      ...(networkFault ? { interrupted: interruptedStatement(finished) } : {}),
      ...(context.fault === "blackhole" && outcome === "faulted" && endedAfterFaultMs !== undefined ? { endedAfterFaultMs } : {}),
    });
    latest = await inspectOrThrow(context, { spec, before }, `${spec.name}: after run ${figures.runs} (${context.fault} ${outcome === "faulted" ? `#${figures.faults}` : "planned, but the run finished first"}; trigger ${trigger}, landed ${landed}, batch size ${batchSize})`);
    figures.valuesChecked += latest.values;
    // A run that finished before its fault leaves this phase nothing to walk; the next phase takes
    // over the faults still owed. The last phase has no next one: it keeps faulting its (now
    // idle) runs, whose start-up a fault can still hit, until the quota is met.
    if (outcome === "finished" && spec.last !== true) break;
  }
  // Finish the job: the re-run must complete, whatever state the faults left.
  for (let tries = 0; ; tries++) {
    await quiesce(context);
    const url = context.fault !== "kill" && random.chance(0.5) ? (context.proxy as CuttableProxy).urlFor(context.directUrl) : context.directUrl;
    const threads = spec.cryptoThreads ?? random.pick([0, 0, 1, 2]);
    const finish = await startCli([...spec.args, ...(context.extraArgs ?? []), "--db", url, "--batch-size", String(random.pick(context.batchSizes)), "--json-events", ...(threads > 0 ? ["--crypto-threads", String(threads)] : [])], { hungAfterMs: 300_000 }).done;
    figures.runs++;
    if (finish.code === 5 && tries < 50) {
      figures.lockStillHeld++;
      await sleep(100);
      continue;
    }
    expect(finish.code, `${spec.name}: the final re-run must finish\n${finish.stderr}`).toBe(0);
    expect(finish.result?.status, spec.name).toMatch(/^(done|nothing-to-do)$/);
    break;
  }
  const after = await inspectOrThrow(context, { spec, before, done: true }, `${spec.name}: after the final run`);
  figures.valuesChecked += after.values;
  expect([...after.keys.active].sort(), `${spec.name}: active keys at the end`).toEqual([...spec.finalActive].sort());
  for (const keyId of spec.finalRevoked) expect(after.keys.revoked.has(keyId), `${spec.name}: key ${keyId} revoked at the end`).toBe(true);
  return figures;
}

async function inspectOrThrow(
  context: CampaignContext,
  transition: { spec: PhaseSpec; before: Inspection; done?: boolean } | undefined,
  when: string,
): Promise<Inspection> {
  const beforeState = transition?.before.state;
  const isDelete = transition?.spec.operation.kind === "delete";
  const inspection = await inspectCoder(
    context.db,
    context.seeded,
    context.keys,
    (table, label) => isDelete && mayBeGone(beforeState, table, label),
    (table, label, row) => (isDelete ? clearedFields(beforeState, table, label, row) : undefined),
  );
  const problems = [...inspection.problems];
  if (transition !== undefined) {
    const check = checkTransition(transition.spec.operation, context.seeded, transition.before.state, inspection.state, transition.done === true);
    problems.push(...check.problems);
  }
  if (problems.length > 0) throw new Error(`${when}: ${problems.length} problem(s):\n${problems.slice(0, 40).join("\n")}`);
  return inspection;
}

/** Before the delete phase every row is present; a row may be gone only if delete-row applies to it. */
function mayBeGone(before: DataState | undefined, table: string, label: string): boolean {
  const row = before?.get(table)?.get(label);
  return row !== undefined && afterDelete(table, row) === undefined;
}

function clearedFields(before: DataState | undefined, table: string, label: string, now: StoredRow): boolean[] | undefined {
  const row = before?.get(table)?.get(label);
  if (row === undefined) return undefined;
  return row.fields.map((field, index) => field.keyId !== null && field.keyId !== "" && (now.fields[index]?.keyId ?? null) === null);
}

/** Small batches while there is much left, so a run has many batch boundaries to be hit between. */
function chooseBatchSize(random: Random, sizes: readonly number[], pending: number, faultsLeft: number): number {
  const fitting = sizes.filter((size) => pending / size >= 10 * faultsLeft);
  return random.pick(fitting.length > 0 ? fitting : [Math.min(...sizes)]);
}

function chooseTrigger(random: Random, pending: number, faultsLeft: number, last: boolean): FaultRecord["trigger"] {
  if (pending === 0) return last ? "early" : random.pick(["early", "end"] as const);
  if (faultsLeft === 1 && !last && random.chance(0.4)) return "end";
  return random.chance(0.25) ? "early" : "walk";
}

interface Injection {
  at: number;
  eventsSeen: CliEvent[];
  connectionsCut: number;
}

/**
 * Waits for the chosen moment and strikes: "early" a random time into start-up (connect, schema,
 * lock, census, key row), "walk" after a random share of the remaining values plus a random part
 * of a batch, "end" just after the last table was walked (census and revoke).
 */
async function injectFault(context: CampaignContext, run: RunningCli, trigger: FaultRecord["trigger"], pending: number, faultsLeft: number): Promise<Injection | undefined> {
  const { random, estimates } = context;
  if (trigger === "early") {
    // Before the first batch is expected: start-up is the target, not a race with the walk.
    await sleep(random.between(0, estimates.firstBatchMs * 0.9));
  } else if (trigger === "walk") {
    // At most 70% of what is left per fault: the run always has batches to go when it is hit.
    const target = Math.max(1, Math.floor((pending * random.between(0.1, 0.7)) / faultsLeft));
    const reached = await run.waitForEvent((event) => event.type === "batch" && Number(event.done) >= target);
    if (reached === undefined) return undefined;
    await sleep(random.between(0, estimates.batchMs));
  } else {
    const start = await run.waitForEvent((event) => event.type === "start");
    const tables = (start?.tables as { table: string }[] | undefined) ?? [];
    const last = tables.at(-1)?.table;
    const reached = await run.waitForEvent((event) => event.type === "stop" || (event.type === "table-done" && event.table === last));
    if (reached === undefined) return undefined;
    await sleep(random.between(0, 10));
  }
  if (context.fault !== "kill") {
    const proxy = context.proxy as CuttableProxy;
    // A cut needs something to cut: wait for the run's first connection if it has none yet.
    while (proxy.openConnections() === 0 && !run.exited()) await sleep(2);
    if (run.exited()) return undefined;
    const eventsSeen = [...run.events];
    // A partition silences the whole path, so a black hole takes every connection; silencing
    // only the run-lock session is black-hole.test.ts's own test. (One silenced idle connection
    // often changes nothing, and the campaign would miss its faults.)
    const connectionsCut = context.fault === "cut"
      ? (random.chance(0.7) ? proxy.cutAll() : proxy.cutOne(random))
      : proxy.blackHoleAll();
    return { at: Date.now(), eventsSeen, connectionsCut };
  }
  if (run.exited()) return undefined;
  const eventsSeen = [...run.events];
  run.kill("SIGKILL");
  return { at: Date.now(), eventsSeen, connectionsCut: 0 };
}

function landedAt(events: CliEvent[]): string {
  const types = new Set(events.map((event) => event.type));
  if (types.has("stop")) return "after the walk, printing the result";
  if (!types.has("start")) return "start-up (connect, schema, lock, census)";
  if (!types.has("batch")) return types.has("key-inserted") ? "key row inserted, first batch" : "first batch";
  const start = events.find((event) => event.type === "start");
  const last = (start?.tables as { table: string }[] | undefined)?.at(-1)?.table;
  if (events.some((event) => event.type === "table-done" && event.table === last)) return "census and revoke";
  return "walking batches";
}

/**
 * "faulted": the fault hit a live run (SIGKILL, or a cut that made it exit 1 with a clear error);
 * "finished": it exited 0 on its own first; "lock-held": the previous run's session was still
 * being torn down by the server.
 */
function judgeFaultedRun(context: CampaignContext, spec: PhaseSpec, run: FinishedRun, injected: Injection | undefined): "faulted" | "finished" | "lock-held" {
  const context_ = `${spec.name}: ${context.fault}\n${run.stderr}`;
  if (run.code === 5) {
    expect(firstErrorLine(run), context_).toMatch(/^dbcrypt: error: another dbcrypt run holds the lock/);
    return "lock-held";
  }
  if (context.fault === "kill") {
    if (injected !== undefined && run.signal === "SIGKILL") return "faulted";
    expect(run.code, context_).toBe(0);
    return "finished";
  }
  if (injected === undefined || injected.connectionsCut === 0 || run.code === 0) {
    // The cut came after the run's last statement (or hit nothing): the run must then be complete.
    expect(run.code, context_).toBe(0);
    return "finished";
  }
  expect(run.code, context_).toBe(1);
  // One line that names the cause, then details and a hint; never a stack trace.
  const causes = context.fault === "cut"
    ? /^dbcrypt: error: .*(lost or could not open the database connection|lost the database connection|cannot connect to PostgreSQL)/
    : /^dbcrypt: error: .*(no answer from PostgreSQL within \S+ \(--query-timeout\)|lost the database connection that holds the run lock|cannot connect to PostgreSQL at .*no answer within \S+ \(--connect-timeout\))/;
  expect(firstErrorLine(run), context_).toMatch(causes);
  // Nothing half-written, and the way on: the command to continue once the cause is fixed.
  if (context.fault === "blackhole") expect(run.stderr, context_).toMatch(/to continue once the cause is fixed: dbcrypt /);
  expect(run.stderr, context_).not.toMatch(/^\s+at /m);
  return "faulted";
}

function describeOutcome(context: CampaignContext, run: FinishedRun): string {
  if (context.fault === "kill") return "SIGKILL";
  const line = firstErrorLine(run).replace(/^dbcrypt: error: /, "");
  const cause = /lost the database connection that holds the run lock/.test(line)
    ? "lost the connection holding the run lock"
    : /no answer from PostgreSQL/.test(line)
      ? "no answer to a statement (--query-timeout)"
      : /--connect-timeout/.test(line)
        ? "no answer while connecting (--connect-timeout)"
    : /cannot connect to PostgreSQL/.test(line)
      ? "could not connect (cut while connecting)"
      : /lost or could not open the database connection/.test(line)
        ? "lost the connection during a statement"
        : line.slice(0, 80);
  return `exit ${run.code}: ${cause}`;
}

/** The statement a cut interrupted, by kind ("write", "read", "census", "delete", …), from the error line. */
export function interruptedStatement(run: { stderr: string }): string {
  const line = firstErrorLine(run).replace(/^dbcrypt: error: /, "");
  const match = /^(write|read|census|delete from|insert key row|revoke key|take the run lock|set session timeouts|query|look for|read the)\b/.exec(line);
  if (match !== null) return match[1] as string;
  if (line.startsWith("lost the database connection that holds the run lock")) return "(any: the lock's connection went)";
  if (line.startsWith("cannot connect")) return "connect";
  return "other";
}

function learn(context: CampaignContext, run: FinishedRun): void {
  const batches = run.events.filter((event) => event.type === "batch");
  const first = batches[0];
  if (first === undefined) return;
  const firstBatchMs = Date.parse(String(first.time)) - run.startedAt;
  if (firstBatchMs > 0) context.estimates.firstBatchMs = 0.7 * context.estimates.firstBatchMs + 0.3 * firstBatchMs;
  if (batches.length >= 2) {
    const span = Date.parse(String(batches.at(-1)!.time)) - Date.parse(String(first.time));
    context.estimates.batchMs = 0.7 * context.estimates.batchMs + 0.3 * Math.max(1, span / (batches.length - 1));
  }
}

/** PostgreSQL: wait until the server has ended every session of the previous (killed) run. */
async function quiesce(context: CampaignContext): Promise<void> {
  if (context.db.kind !== "postgres") return;
  const deadline = Date.now() + 20_000;
  for (;;) {
    const [row] = await context.db.query<{ n: string | number }>(
      "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'dbcrypt %'",
    );
    if (Number(row?.n ?? 0) === 0) return;
    if (Date.now() > deadline) throw new Error("sessions of a killed dbcrypt run are still open after 20 s");
    await sleep(20);
  }
}

/** Splits a number of faults over phases, earlier phases taking the remainder. */
export function splitQuota(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, index) => Math.floor(total / parts) + (index < total % parts ? 1 : 0));
}

/**
 * The campaign the kill and cut suites share: rotate A→B, decrypt, encrypt under C, delete, with
 * `total` faults spread over the four phases (faults a phase could not place move to the next).
 */
export async function runLifecycleCampaign(context: CampaignContext, keys: { a: TestKey; b: TestKey; c: TestKey }, total: number): Promise<PhaseFigures[]> {
  const { a, b, c } = keys;
  const phases: Omit<PhaseSpec, "faults">[] = [
    { name: "rotate", operation: { kind: "rotate", to: b.id }, args: ["rotate", "--new-key", b.base64, "--old-keys", a.base64, "--yes"], finalActive: [b.id], finalRevoked: [a.id] },
    { name: "decrypt", operation: { kind: "decrypt" }, args: ["decrypt", "--keys", b.base64, "--yes"], finalActive: [], finalRevoked: [a.id, b.id] },
    { name: "encrypt", operation: { kind: "rotate", to: c.id }, args: ["rotate", "--new-key", c.base64, "--yes"], finalActive: [c.id], finalRevoked: [a.id, b.id] },
    { name: "delete", operation: { kind: "delete" }, args: ["delete", "--yes"], finalActive: [], finalRevoked: [a.id, b.id, c.id] },
  ];
  const quotas = splitQuota(total, phases.length);
  const figures: PhaseFigures[] = [];
  let carried = 0;
  for (const [index, phase] of phases.entries()) {
    const faults = (quotas[index] ?? 0) + carried;
    const done = await runPhase(context, { ...phase, faults, last: index === phases.length - 1 });
    carried = faults - done.faults;
    figures.push(done);
  }
  return figures;
}

export interface PreparedCampaign {
  context: CampaignContext;
  keys: { a: TestKey; b: TestKey; c: TestKey };
  seed: Awaited<ReturnType<typeof seedChaosDatabase>>;
}

/**
 * What every lifecycle fault suite starts from: three fresh keys, a database seeded under the
 * first at the campaign's size, and the context with the suite's seeded random choices.
 */
export async function prepareLifecycleCampaign(
  db: TestDb,
  directUrl: string,
  fault: FaultKind,
  randomLabel: string,
  extra: Pick<CampaignContext, "proxy" | "extraArgs" | "maxEndAfterFaultMs"> = {},
): Promise<PreparedCampaign> {
  const keys = { a: freshKey(), b: freshKey(), c: freshKey() };
  const seed = await seedChaosDatabase(db, chaos.rows, keys.a);
  const context: CampaignContext = {
    db,
    directUrl,
    seeded: seed.seeded,
    keys: new Map([keys.a, keys.b, keys.c].map((key) => [key.id, key])),
    random: new Random(chaos.seed, randomLabel),
    fault,
    ...extra,
    batchSizes: chaos.mode === "long" ? [25, 50, 100, 250, 500] : [10, 25, 50, 100],
    estimates: { firstBatchMs: 600, batchMs: 20 },
  };
  return { context, keys, seed };
}
