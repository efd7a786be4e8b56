import type { Heartbeat } from '../observability/health.js';
import type { FullMigration } from './full-migration.js';
import { LOAD_PHASES } from '../state/phases.js';

/** One step of a migration command, as the CLI shows it (a listr2 task: src/cli/tasks.ts). */
export interface MigrationStep {
  title: string;
  /** Why the step is skipped, or false to run it. */
  skip?: () => string | false;
  /** Runs the step; `report` replaces the step's one-line progress text. */
  run: (report: (text: string) => void) => Promise<void> | void;
}

export interface StepHooks {
  /** Steps without progress reports of their own run inside `heartbeat.during` (liveness). */
  heartbeat: Heartbeat;
  /** Called as the initial load starts (--metrics-port: measure the collections to load). */
  beforeLoad?: () => void;
}

/** The first steps, shared by full-migrate and initial-load: order is what makes the copy consistent. */
function loadSteps(m: FullMigration, hb: StepHooks, skipLoadWhenDone: boolean): MigrationStep[] {
  return [
    { title: 'Preflight', run: () => hb.heartbeat.during('preflight', async () => void (await m.runPreflight())) },
    { title: 'Record the resume point', run: () => hb.heartbeat.during('resume point', () => m.recordResumePoint()) },
    { title: 'Start capture (source change stream → Kinesis)', run: () => m.startCapture() },
    {
      title: 'Initial load (mongodump | mongorestore)',
      ...(skipLoadWhenDone ? { skip: () => !LOAD_PHASES.includes(m.phase) && 'already loaded' } : {}),
      run: (report) => {
        hb.beforeLoad?.();
        return hb.heartbeat.during('initial load', () => m.runLoad(report));
      },
    },
  ];
}

/**
 * `migrator full-migrate`, start to end (FullMigration is the state machine under it; a rerun
 * resumes at the recorded phase, the steps it already did being no-ops or skipped).
 */
export function fullMigrateSteps(m: FullMigration, hooks: StepHooks): MigrationStep[] {
  return [
    ...loadSteps(m, hooks, true),
    { title: 'Start apply (Kinesis → target)', run: () => m.startApply() },
    { title: 'Replicate until cutover (run `migrator cutover` to finish)', run: (report) => m.replicateUntilCutover(report) },
  ];
}

/**
 * `migrator initial-load`: the load with capture running during the copy, then capture stopped at
 * a checkpoint. `captureComplete()` says afterwards whether capture reached the end of the load.
 */
export function initialLoadSteps(m: FullMigration, hooks: StepHooks): { steps: MigrationStep[]; captureComplete: () => boolean } {
  let complete = false;
  const steps: MigrationStep[] = [
    ...loadSteps(m, hooks, false),
    {
      title: 'Let capture reach the end of the load',
      run: (report) =>
        hooks.heartbeat.during('capture reaching the end of the load', async () => {
          complete = await m.waitForCaptureToReachNow();
          if (!complete) report('capture is still behind: the next capture continues from its checkpoint');
        }),
    },
    { title: 'Stop capture at a checkpoint', run: () => hooks.heartbeat.during('stopping capture', () => m.stopPipelines()) },
  ];
  return { steps, captureComplete: () => complete };
}
