import type { MongoClient } from 'mongodb';
import type { SchemaKind } from '../db/compare-schema.js';
import type { ServerInfo } from '../db/server-info.js';
import type { NamespaceRules } from '../model/namespace-filter.js';
import { expandedEventsSupported } from '../source/expanded-events.js';
import type { StateStore } from '../state/store.js';
import { MigratorError } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';
import type { Logger } from '../util/logger.js';
import { verifyMigration, type VerificationReport } from '../verify/verify-migration.js';
import { reconcileSchema } from './schema-reconcile.js';
import type { TimeSeriesMode } from './target-compat.js';
import { activeTtlHolds, restoreHeldTtl } from './ttl.js';

/** What the last steps of the cutover read and write (a subset of FullMigrationInput). */
export interface CutoverVerificationInput {
  migrationId: string;
  source: MongoClient;
  target: MongoClient;
  store: StateStore;
  stateDb: string;
  rules: NamespaceRules;
  log: Logger;
  ignoreSchema?: readonly SchemaKind[];
  timeSeries?: TimeSeriesMode;
}

/**
 * The cutover after every shard applied the marker (every change made before the writes stopped
 * is on the target; capture and apply are stopped): reconcile the schema, verify, and only on a
 * passing verification restore the held TTL indexes and complete the cutover. A mismatch aborts
 * the cutover (the sync continues on a rerun, TTL still held) and throws exit 7.
 */
export async function verifyAndComplete(p: CutoverVerificationInput, sourceInfo: ServerInfo | undefined): Promise<VerificationReport> {
  await reconcileTargetSchema(p, sourceInfo);
  const verification = await verifyAfterBarrier(p);
  if (!verification.match) await abortOnMismatch(p, verification);
  await restoreTtlAndComplete(p);
  return verification;
}

/**
 * SCHEMA: indexes and collection options changed on the source after the dump read them are
 * replayed by apply where the source has expanded change events (apply/schema-replay.ts);
 * elsewhere (DocumentDB, MongoDB < 6.0) this reconcile builds/drops/changes what differs. It
 * runs on every source as a safety net (it logs a warning for any change it makes where
 * replay should have done it). Writes are stopped, so the source's schema is final.
 */
async function reconcileTargetSchema(p: CutoverVerificationInput, sourceInfo: ServerInfo | undefined): Promise<void> {
  const expandedEvents = sourceInfo ? sourceInfo.flavor === 'mongodb' && expandedEventsSupported(sourceInfo.version) : false;
  // The TTL indexes held on the target (not restored yet): the reconcile compares each at its
  // recorded original; the restore follows a passing verification.
  const ttlHolds = activeTtlHolds(await p.store.listTtlHolds(p.migrationId));
  const reconciled = await reconcileSchema({
    source: p.source,
    target: p.target,
    rules: p.rules,
    skipDbs: new Set([p.stateDb]),
    log: p.log,
    expandedEvents,
    ignore: p.ignoreSchema,
    ttl: { store: p.store, migrationId: p.migrationId, holds: ttlHolds },
  });
  p.log.info({ changed: reconciled.changed.length, left: reconciled.left.length }, 'schema reconciled');
}

/**
 * Every document, index, option and view compared; schema differences logged. A schema
 * difference left is a mismatch (exit 7) unless the user passed --ignore-schema for its kind
 * (then it is listed as a warning).
 */
async function verifyAfterBarrier(p: CutoverVerificationInput): Promise<VerificationReport> {
  const verification = await verifyMigration(p.source, p.target, p.rules, {
    skipDbs: new Set([p.stateDb]),
    ignoreSchema: p.ignoreSchema ?? [],
    // Read again: the reconcile records the originals of the TTL indexes it built or changed.
    ttlHolds: activeTtlHolds(await p.store.listTtlHolds(p.migrationId)),
    ttlExpiredAfterBarrier: true, // every shard applied the barrier, writes stopped (src/verify/ttl-lapse.ts)
    timeSeriesLoadOnly: p.timeSeries === 'load-only',
  });
  for (const d of verification.schema.differences) {
    p.log.warn(
      { kind: d.kind, source: d.source, target: d.target, name: d.name, difference: d.difference, ignored: d.ignored },
      `schema difference${d.ignored ? ' (ignored: --ignore-schema)' : ''}: ${d.detail}`,
    );
  }
  return verification;
}

/** Records the mismatch, aborts the cutover and throws exit 7 (the replicate loop unblocks the writes). */
async function abortOnMismatch(p: CutoverVerificationInput, verification: VerificationReport): Promise<never> {
  const bad = verification.namespaces.filter((n) => !n.match).map((n) => n.source || n.target);
  const schema = verification.schema.differences.filter((d) => !d.ignored);
  const what = [
    ...(bad.length ? [`${bad.join(', ')} differ between source and target`] : []),
    ...(schema.length ? [`${schema.length} schema difference(s) (${[...new Set(schema.map((d) => d.kind))].join(', ')}: ${schema.slice(0, 3).map((d) => d.detail).join('; ')})`] : []),
  ];
  const err = new MigratorError(ExitCode.VERIFICATION_MISMATCH, `Cutover verification failed: ${what.join('; ')}.`, {
    hint: schema.length
      ? 'Run `migrator verify` for the list; fix the target (or accept the difference knowingly: rerun full-migrate with --ignore-schema indexes|options|views|all) and retry the cutover.'
      : 'Run `migrator verify` for the differing ids; rerun full-migrate to continue replicating and retry the cutover.',
  });
  await p.store.recordError(p.migrationId, err).catch(() => undefined); // before the abort (see CutoverSequence.writeMarker)
  await p.store.abortCutover(p.migrationId, err.message);
  throw err; // replicateUntilCutover unblocks the writes
}

/**
 * The TTL restore step: the target's TTL indexes get their original expireAfterSeconds back only
 * now, once the verification passed (a mismatch aborts the cutover and the sync continues, still
 * held); then the cutover is recorded complete.
 */
async function restoreTtlAndComplete(p: CutoverVerificationInput): Promise<void> {
  await restoreHeldTtl({ target: p.target, store: p.store, migrationId: p.migrationId, log: p.log });
  await p.store.completeCutover(p.migrationId);
}
