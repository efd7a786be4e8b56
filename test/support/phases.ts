import type { ResultPromise } from 'execa';
import type { MigrationPhase, StateStore } from '../../src/state/store.js';
import { sleep } from './wait.js';

/**
 * Waits until the migration's phase (from the state store) is one of `want`; fails at once with
 * the process's output if `proc` (the full-migrate driving it) exits first. `logTail`: what to show
 * of that output instead of its raw stderr tail (e.g. spawnFullMigrate's parsed log lines); it is
 * also added when the wait times out.
 */
export async function waitForPhase(
  store: StateStore,
  migrationId: string,
  want: readonly MigrationPhase[],
  opts: { proc?: ResultPromise; timeoutMs?: number; pollMs?: number; logTail?: () => string } = {},
): Promise<MigrationPhase> {
  const ms = opts.timeoutMs ?? 120_000;
  const end = Date.now() + ms;
  let last: MigrationPhase | undefined;
  while (Date.now() < end) {
    last = (await store.getMigration(migrationId))?.phase;
    if (last && want.includes(last)) return last;
    if (opts.proc && opts.proc.exitCode !== null) {
      const output = opts.logTail ? opts.logTail() : String((await opts.proc).stderr).slice(-2000);
      throw new Error(`full-migrate exited ${opts.proc.exitCode} in phase ${last}: ${output}`);
    }
    await sleep(opts.pollMs ?? 25);
  }
  throw new Error(`phase ${last ?? 'none'} after ${ms} ms, expected ${want.join('/')}${opts.logTail ? `\n${opts.logTail()}` : ''}`);
}
