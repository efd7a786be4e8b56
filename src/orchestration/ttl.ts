/**
 * Holding the target's TTL indexes during the sync and restoring them at the cutover (why and the
 * documented commands: src/db/ttl-hold.ts).
 *
 *  - holdTargetTtl: after the load restored the indexes (and again when replication starts, which
 *    re-holds an index restored by a cutover that then did not complete), every TTL index of the
 *    selection on the target gets expireAfterSeconds 2147483647; its original value is recorded in
 *    the state store first.
 *  - restoreHeldTtl: at the cutover, once the verification passed, the recorded originals go back.
 *    Idempotent: a record is marked restored only after its collMod succeeded, so a crash or a
 *    failure in between is redone by the next run (collMod to the same value changes nothing).
 *
 * A cutover that is aborted (`cutover --abort`, or a verification mismatch) or a migration that FAILED
 * does not end the sync — a rerun continues replicating — so the indexes stay held; `status` says so
 * (ttlHeld) and names the collMod that gives a target its TTL back if the migration is abandoned.
 */
import type { Document, MongoClient } from 'mongodb';
import { HELD_EXPIRE_AFTER_SECONDS, holdTtl, recordHeldTtl, ttlSeconds } from '../db/ttl-hold.js';
import type { TtlHoldDoc, TtlStateStore } from '../state/store.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { isNamespaceNotFound } from '../db/mongo-errors.js';


async function targetIndexes(target: MongoClient, db: string, coll: string): Promise<Document[]> {
  try {
    return await target.db(db).collection(coll).listIndexes().toArray();
  } catch (err) {
    if (isNamespaceNotFound(err)) return [];
    throw err;
  }
}

/** The collMod that sets an index's expireAfterSeconds (https://www.mongodb.com/docs/manual/reference/command/collMod/). */
export function ttlCollMod(coll: string, name: string, expireAfterSeconds: number): Document {
  return { collMod: coll, index: { name, expireAfterSeconds } };
}

export interface HoldResult {
  held: { ns: string; name: string; originalExpireAfterSeconds: number }[];
  /** Indexes the target refused to change (their TTL keeps running on the target). */
  failed: { ns: string; name: string; error: string }[];
}

/**
 * Holds every TTL index of the selected collections on the target. Idempotent: an index already at
 * the held value is left alone (its original is in the store from the first hold).
 */
export async function holdTargetTtl(p: {
  target: MongoClient;
  store: Pick<TtlStateStore, 'recordTtlHold'>;
  migrationId: string;
  /** Target namespaces of the selection. */
  targets: readonly { db: string; coll: string }[];
  log: Logger;
}): Promise<HoldResult> {
  const out: HoldResult = { held: [], failed: [] };
  const seen = new Set<string>();
  for (const t of p.targets) {
    const ns = `${t.db}.${t.coll}`;
    if (seen.has(ns)) continue;
    seen.add(ns);
    for (const spec of await targetIndexes(p.target, t.db, t.coll)) {
      const { originalExpireAfterSeconds } = holdTtl(spec);
      if (originalExpireAfterSeconds === undefined) continue;
      const name = String(spec.name);
      // INVARIANT: recorded before the target changes (a crash in between leaves a record to restore from).
      await recordHeldTtl(p.store, p.migrationId, t, { name, key: spec.key as Document }, originalExpireAfterSeconds);
      try {
        await p.target.db(t.db).command(ttlCollMod(t.coll, name, HELD_EXPIRE_AFTER_SECONDS));
        out.held.push({ ns, name, originalExpireAfterSeconds });
      } catch (err) {
        // E.g. a target that does not let collMod change a TTL index. Not fatal: the sync is still
        // correct (the source's TTL deletes arrive as deletes; a document the target expired early
        // comes back with the source's next change of it), but the two sides may differ for a while.
        out.failed.push({ ns, name, error: errorMessage(err) });
        p.log.warn(
          { ns, index: name, expireAfterSeconds: originalExpireAfterSeconds, err: errorMessage(err) },
          'could not hold the TTL index on the target (collMod refused): its TTL monitor keeps deleting documents during the sync',
        );
      }
    }
  }
  if (out.held.length) {
    p.log.info(
      { indexes: out.held.map((h) => `${h.ns}/${h.name}`) },
      `TTL indexes held on the target until the cutover (expireAfterSeconds ${HELD_EXPIRE_AFTER_SECONDS}; the originals are in the state store)`,
    );
  }
  return out;
}

export interface RestoreResult {
  restored: { ns: string; name: string; expireAfterSeconds: number }[];
  /** Holds that needed no collMod, and why. */
  skipped: { ns: string; name: string; note: string }[];
}

/**
 * Puts every held TTL index of the migration back to its recorded expireAfterSeconds. Idempotent and
 * restartable: only records not yet restored are looked at, and each is marked restored after its
 * collMod succeeded. A held index that is no longer on the target, or that someone changed to
 * another value than the held one, is left as it is (and the record says why).
 */
export async function restoreHeldTtl(p: {
  target: MongoClient;
  store: Pick<TtlStateStore, 'listTtlHolds' | 'markTtlRestored'>;
  migrationId: string;
  log: Logger;
}): Promise<RestoreResult> {
  const out: RestoreResult = { restored: [], skipped: [] };
  for (const h of await p.store.listTtlHolds(p.migrationId)) {
    if (h.restoredAt) continue;
    const ns = `${h.db}.${h.coll}`;
    const spec = (await targetIndexes(p.target, h.db, h.coll)).find((s) => s.name === h.name);
    const current = spec ? ttlSeconds(spec.expireAfterSeconds) : undefined;
    if (current !== HELD_EXPIRE_AFTER_SECONDS) {
      const note = spec
        ? current === undefined
          ? 'the index is no longer a TTL index on the target: left as it is'
          : `expireAfterSeconds is ${current} on the target, not the held value: left as it is`
        : 'the index is no longer on the target';
      await p.store.markTtlRestored(h._id, note);
      out.skipped.push({ ns, name: h.name, note });
      continue;
    }
    await p.target.db(h.db).command(ttlCollMod(h.coll, h.name, h.originalExpireAfterSeconds));
    await p.store.markTtlRestored(h._id);
    out.restored.push({ ns, name: h.name, expireAfterSeconds: h.originalExpireAfterSeconds });
  }
  if (out.restored.length) {
    p.log.info({ indexes: out.restored.map((r) => `${r.ns}/${r.name}=${r.expireAfterSeconds}`) }, 'TTL indexes on the target restored to their original expireAfterSeconds');
  }
  for (const s of out.skipped) p.log.info({ ns: s.ns, index: s.name }, `held TTL index not restored: ${s.note}`);
  return out;
}

/** The holds still in force (held on the target, not restored). */
export function activeTtlHolds(holds: readonly TtlHoldDoc[]): TtlHoldDoc[] {
  return holds.filter((h) => !h.restoredAt);
}

/** The mongosh command that gives one held index its TTL back (for people abandoning a migration). */
export function restoreCommandText(h: Pick<TtlHoldDoc, 'db' | 'coll' | 'name' | 'originalExpireAfterSeconds'>): string {
  return `db.getSiblingDB(${JSON.stringify(h.db)}).runCommand(${JSON.stringify(ttlCollMod(h.coll, h.name, h.originalExpireAfterSeconds))})`;
}

/**
 * After a failure: says which TTL indexes stay held on the target (a rerun continues the sync and
 * restores them at its cutover; someone abandoning the migration restores them by hand).
 */
export async function warnTtlHeld(store: Pick<TtlStateStore, 'listTtlHolds'>, migrationId: string, log: Logger): Promise<void> {
  const held = activeTtlHolds(await store.listTtlHolds(migrationId));
  if (held.length === 0) return;
  log.warn(
    { indexes: held.map((h) => `${h.db}.${h.coll}/${h.name}`), restore: held.map(restoreCommandText) },
    `${held.length} TTL index(es) stay held on the target (expireAfterSeconds ${HELD_EXPIRE_AFTER_SECONDS}): rerun full-migrate to continue (the cutover restores them), or, to abandon the migration, run the listed commands on the target`,
  );
}
