/**
 * The phase vocabulary of a migration (MigrationDoc.phase) and the groups of phases the commands,
 * status and metrics test against: one place, so a new phase is added to every group it belongs to.
 *
 *   CREATED → INITIAL_LOAD → CATCHING_UP → READY_FOR_CUTOVER ⇄ CUTTING_OVER → COMPLETED
 *   (any phase → FAILED; ABORTED)
 */
export const MIGRATION_PHASES = [
  'CREATED',
  'INITIAL_LOAD',
  'CATCHING_UP',
  'READY_FOR_CUTOVER',
  'CUTTING_OVER',
  'COMPLETED',
  'FAILED',
  'ABORTED',
] as const;
export type MigrationPhase = (typeof MIGRATION_PHASES)[number];

/** Phases in which the initial load may still (re)write the target. */
export const LOAD_PHASES: readonly MigrationPhase[] = ['CREATED', 'INITIAL_LOAD'];

/** The load is done and changes are replicated (the cutover is not under way). */
export const REPLICATING_PHASES: readonly MigrationPhase[] = ['CATCHING_UP', 'READY_FOR_CUTOVER'];

/** Phases in which `migrator cutover` accepts a request (see src/orchestration/cutover-wait.ts). */
export const CUTOVER_REQUEST_PHASES: readonly MigrationPhase[] = ['CATCHING_UP', 'READY_FOR_CUTOVER', 'CUTTING_OVER'];

/** Phases nothing moves a migration out of by itself (`status --watch` stops there). */
export const TERMINAL_PHASES: readonly MigrationPhase[] = ['COMPLETED', 'FAILED', 'ABORTED'];
