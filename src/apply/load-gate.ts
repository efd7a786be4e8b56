/**
 * LOAD GATE: apply never writes to the target while the migration's initial load has not
 * finished. A change applied before mongorestore copied its document would be undone by the
 * copy (a delete applied, then the dumped document restored: an extra document forever), and a
 * reload after a crash drops the collections apply had written to while its checkpoints stay
 * ahead; it would also make full-migrate's preflight find a non-empty target. So an `apply`
 * started next to `full-migrate` (its own container) waits here until the phase has left
 * CREATED/INITIAL_LOAD — and, when it starts first, until full-migrate has created the
 * migration at all. Only `cdcOnly` (plain CDC: `capture` + `apply`, no load) applies without a
 * migration document.
 */
import { LOAD_PHASES, phaseBeforeFailure, type ApplyStateStore, type MigrationDoc } from '../state/store.js';
import type { Logger } from '../util/logger.js';
import { sleep } from '../util/retry.js';

const LOAD_GATE_POLL_MS = 1000;
/** The reason for waiting is logged at once, then this often while it lasts (an operator reading recent logs sees why nothing happens). */
const LOAD_GATE_LOG_MS = 60_000;

export interface LoadGateInput {
  store: Pick<ApplyStateStore, 'getMigration'>;
  migrationId: string;
  cdcOnly: boolean | undefined;
  log: Logger;
  signal: AbortSignal;
  /** Called every poll (liveness). */
  beat: () => void;
  /** The migration is COMPLETED and apply is to exit then: stop waiting (the caller says why). */
  completed: (m: MigrationDoc | null) => boolean;
  /** Whether apply is now waiting for the load (readiness). */
  setWaiting: (waiting: boolean) => void;
  pollMs?: number;
}

/** Resolves true once apply may write, false when stopped (signal, or `completed`) while waiting. */
export async function waitForInitialLoad(input: LoadGateInput): Promise<boolean> {
  const loading = (m: MigrationDoc | null): boolean => (m ? LOAD_PHASES.includes(phaseBeforeFailure(m)) : !input.cdcOnly);
  let nextLogAt = 0;
  while (!input.signal.aborted) {
    input.beat();
    const m = await input.store.getMigration(input.migrationId);
    if (input.completed(m)) return false;
    const waiting = loading(m);
    input.setWaiting(waiting);
    if (!waiting) return true;
    if (Date.now() >= nextLogAt) {
      nextLogAt = Date.now() + LOAD_GATE_LOG_MS;
      if (m) input.log.info({ phase: m.phase }, 'waiting for the initial load to finish before applying changes');
      else {
        input.log.info(
          { migrationId: input.migrationId },
          'waiting for full-migrate or initial-load to create the migration and finish its initial load ' +
            '(for a change stream without a full migration pass --cdc-only)',
        );
      }
    }
    await sleep(input.pollMs ?? LOAD_GATE_POLL_MS, input.signal);
  }
  return false;
}

/**
 * The COMPLETED watch of an apply with `exitWhenCompleted` (read before anything is applied, then
 * every `COMPLETED_POLL_MS`): once the migration is COMPLETED it calls `onCompleted` (once) and
 * the poll calls `stop`, which ends apply like a signal does (batches in hand finished and
 * checkpointed).
 */
export class CompletedWatch {
  private checking = false;
  private seen = false;

  constructor(
    private readonly input: {
      store: Pick<ApplyStateStore, 'getMigration'>;
      migrationId: string;
      exitWhenCompleted: boolean | undefined;
      log: Logger;
      /** Sets the stop reason 'completed' unless another is set; true if it did. */
      onCompleted: () => boolean;
    },
  ) {}

  /** `exitWhenCompleted` and `m` is COMPLETED: says why (once). The caller stops. */
  completed(m: MigrationDoc | null): boolean {
    if (!this.input.exitWhenCompleted || m?.phase !== 'COMPLETED') return false;
    if (!this.seen && this.input.onCompleted()) {
      this.seen = true;
      this.input.log.info({ migrationId: this.input.migrationId }, 'the migration is COMPLETED (cut over): nothing is left to apply, stopping');
    }
    return true;
  }

  /** One poll (skipped while one runs); `stop` when COMPLETED. Errors wait for the next tick. */
  async poll(stop: () => void): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      const m = await this.input.store.getMigration(this.input.migrationId);
      if (this.completed(m)) stop();
    } catch {
      // the next tick reads it again
    } finally {
      this.checking = false;
    }
  }
}
