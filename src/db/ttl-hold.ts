/**
 * TTL indexes are HELD on the target while the migration syncs: the target must not act on its own.
 *
 * Why: a TTL index deletes documents by the clock of the server that holds it
 * (https://www.mongodb.com/docs/manual/core/index-ttl/). During the migration the source's TTL
 * monitor deletes its expired documents and those deletes arrive as ordinary `delete` change events
 * ("each removal is a delete"; the TTL monitor's deletes are replicated like any other delete). A
 * target whose own TTL index also expires documents deletes them at another moment, by another
 * clock, and possibly a document the source has since refreshed: the two sides drift apart and the
 * cutover's verification sees missing/extra documents.
 *
 * What the systems users compare us with do, and what we do likewise:
 *  - mongosync sets `expireAfterSeconds` of every TTL index on the destination to MAX_INT during
 *    synchronization and restores the original value at commit
 *    (https://www.mongodb.com/docs/cluster-to-cluster-sync/current/reference/disaster-recovery/ ,
 *    "TTL Indexes");
 *  - Percona ClusterSync for MongoDB "temporarily disables TTL expiration and saves the
 *    expireAfterSeconds property for later restoration", and restores it at finalization
 *    (https://docs.percona.com/percona-clustersync-for-mongodb/intro.html#index-handling).
 *
 * The held value is the documented maximum: "The TTL index expireAfterSeconds value must be within 0
 * and 2147483647 inclusive" (https://www.mongodb.com/docs/manual/core/index-ttl/), i.e. 68 years: no
 * document of a sane TTL field expires under it. It is changed in place with collMod
 * `{collMod: <coll>, index: {name | keyPattern, expireAfterSeconds: <n>}}`
 * (https://www.mongodb.com/docs/manual/reference/command/collMod/#change-the-expiration-value-for-a-ttl-index),
 * which keeps the index (no rebuild).
 *
 * INVARIANT (crash safety): the original value is recorded in the state store BEFORE the target
 * index is changed (recordAndHold): a crash in between leaves a record, and the restore finds it.
 * A value read back as the held value itself is never recorded as an original (a rerun after the
 * hold must not overwrite the user's value with ours).
 *
 * API for the DDL replay during CDC (createIndexes / collMod events), on the TARGET namespace:
 *  - createIndexes: `specs = await holdReplayedIndexes(store, migrationId, targetNs, specs)`, then
 *    run createIndexes with the returned specs;
 *  - collMod: `cmd = await holdReplayedCollMod(store, migrationId, targetNs, cmd, findIndex)`, then
 *    run the returned command (`findIndex` resolves `{name}` / `{keyPattern}` to the target index's
 *    `{name, key}`, e.g. over listIndexes).
 * Both record before they return, so the record precedes the target change. The pure parts are
 * {@link holdTtl} and {@link holdCollMod}; {@link recordHeldTtl} records one original.
 *
 * Amazon DocumentDB documents TTL indexes (createIndex with expireAfterSeconds,
 * https://docs.aws.amazon.com/documentdb/latest/developerguide/index-property-expireafterseconds.html)
 * but not changing one with collMod: the hold is attempted, and a refusal is a WARN (ttl.ts), not an
 * error. The sync stays correct then (the source's deletes arrive; a document the target expired
 * early comes back with the source's next change of it), and the cutover's verification still sets
 * aside a document missing on the target only when the source's own TTL proves it lapsed
 * (src/verify/ttl-lapse.ts).
 */
import { Double, Int32, Long, type Document } from 'mongodb';

/** The largest expireAfterSeconds MongoDB accepts (https://www.mongodb.com/docs/manual/core/index-ttl/). */
export const HELD_EXPIRE_AFTER_SECONDS = 2147483647;

/** A number of any BSON numeric type (Int32, Double, Long, plain number) as a JS number, else undefined. */
export function ttlSeconds(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof Int32 || v instanceof Double) return v.valueOf();
  if (v instanceof Long) return v.toNumber();
  return undefined;
}

/** Whether an index spec (listIndexes / createIndexes form) is a TTL index. */
export function isTtlSpec(spec: Document): boolean {
  return ttlSeconds(spec.expireAfterSeconds) !== undefined;
}

export interface HeldSpec {
  /** The spec to create on the target (expireAfterSeconds held), or the spec unchanged. */
  spec: Document;
  /** The value the source asked for, when the spec was a TTL index not yet held. */
  originalExpireAfterSeconds?: number;
}

/**
 * An index spec as the target gets it during the sync: a TTL index with the held expireAfterSeconds.
 * Pure; the input is not modified. A spec already at the held value gives no original (it cannot be
 * known from it: the state store has it).
 */
export function holdTtl(spec: Document): HeldSpec {
  const seconds = ttlSeconds(spec.expireAfterSeconds);
  if (seconds === undefined || seconds === HELD_EXPIRE_AFTER_SECONDS) return { spec };
  return { spec: { ...spec, expireAfterSeconds: HELD_EXPIRE_AFTER_SECONDS }, originalExpireAfterSeconds: seconds };
}

export interface HeldCollMod {
  /** The collMod command to run on the target. */
  command: Document;
  /** The index it changes and the expireAfterSeconds the source set, when it set one. */
  index?: { name?: string; keyPattern?: Document; originalExpireAfterSeconds: number };
}

/**
 * A collMod as the target gets it during the sync: `index.expireAfterSeconds` replaced by the held
 * value (the new value is what the restore at cutover sets). Everything else is kept. Pure.
 */
export function holdCollMod(command: Document): HeldCollMod {
  const index = command.index as Document | undefined;
  const seconds = index ? ttlSeconds(index.expireAfterSeconds) : undefined;
  if (!index || seconds === undefined || seconds === HELD_EXPIRE_AFTER_SECONDS) return { command };
  const out: HeldCollMod = { command: { ...command, index: { ...index, expireAfterSeconds: HELD_EXPIRE_AFTER_SECONDS } }, index: { originalExpireAfterSeconds: seconds } };
  if (typeof index.name === 'string') out.index!.name = index.name;
  if (index.keyPattern && typeof index.keyPattern === 'object') out.index!.keyPattern = index.keyPattern as Document;
  return out;
}

/** One held TTL index (what the state store records; see StateStore.recordTtlHold). */
export interface TtlHold {
  /** Target namespace. */
  db: string;
  coll: string;
  /** Index name on the target. */
  name: string;
  keyPattern: Document;
  originalExpireAfterSeconds: number;
}

/** What recordHeldTtl needs of the state store (a Pick, so fakes type-check against it). */
export interface TtlHoldStore {
  recordTtlHold(migrationId: string, hold: TtlHold): Promise<void>;
}

/**
 * Records the original value of a TTL index about to be held on the target. Call it BEFORE the
 * createIndexes / collMod that holds it runs (see the invariant above). A spec that is not a TTL
 * index, or is already held, records nothing.
 */
export async function recordHeldTtl(
  store: TtlHoldStore,
  migrationId: string,
  target: { db: string; coll: string },
  index: { name: string; key: Document },
  originalExpireAfterSeconds: number | undefined,
): Promise<void> {
  if (originalExpireAfterSeconds === undefined || originalExpireAfterSeconds === HELD_EXPIRE_AFTER_SECONDS) return;
  await store.recordTtlHold(migrationId, { db: target.db, coll: target.coll, name: index.name, keyPattern: index.key, originalExpireAfterSeconds });
}

/**
 * For the DDL replay of a `createIndexes` event: records the original of every TTL spec (before the
 * target changes, see the invariant above) and returns the specs to create on the target, TTL held.
 * `target` is the target namespace (after --map).
 */
export async function holdReplayedIndexes(store: TtlHoldStore, migrationId: string, target: { db: string; coll: string }, specs: readonly Document[]): Promise<Document[]> {
  const out: Document[] = [];
  for (const spec of specs) {
    const held = holdTtl(spec);
    if (held.originalExpireAfterSeconds !== undefined) {
      await recordHeldTtl(store, migrationId, target, { name: String(spec.name), key: spec.key as Document }, held.originalExpireAfterSeconds);
    }
    out.push(held.spec);
  }
  return out;
}

/**
 * For the DDL replay of a `collMod` (a `modify` event) on the target namespace `target`: when it
 * changes a TTL index's expireAfterSeconds, records the new value as the one to restore and returns
 * the command with the value held; any other collMod is returned unchanged. The index (named by
 * `name` or `keyPattern` in the command) is resolved on the target with `findIndex` (e.g. over
 * listIndexes) for its name and key pattern; one that cannot be found is not recorded and the held
 * command still runs (the target then reports the missing index itself).
 */
export async function holdReplayedCollMod(
  store: TtlHoldStore,
  migrationId: string,
  target: { db: string; coll: string },
  command: Document,
  findIndex: (by: { name?: string; keyPattern?: Document }) => Promise<{ name: string; key: Document } | undefined>,
): Promise<Document> {
  const held = holdCollMod(command);
  if (!held.index) return held.command;
  const by: { name?: string; keyPattern?: Document } = {};
  if (held.index.name !== undefined) by.name = held.index.name;
  if (held.index.keyPattern !== undefined) by.keyPattern = held.index.keyPattern;
  const idx = await findIndex(by);
  if (idx) await recordHeldTtl(store, migrationId, target, idx, held.index.originalExpireAfterSeconds);
  return held.command;
}
