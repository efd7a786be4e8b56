/**
 * The version of the state store's layout (`meta` document `schema`): a store written by a newer
 * migrator is refused rather than misread; an older or new store is stamped with ours.
 */
import { MigratorError } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';
import { COLLECTIONS, upsertTolerantOfRace, type StoreContext } from './store-context.js';

/** Version of the state store's layout (collections and document shapes). */
export const STATE_SCHEMA_VERSION = 1;

export async function checkSchemaVersion(ctx: StoreContext): Promise<void> {
  const meta = ctx.collection<{ _id: string; version: number; updatedAt: Date }>(COLLECTIONS.meta);
  const doc = await meta.findOne({ _id: 'schema' });
  if (doc && doc.version > STATE_SCHEMA_VERSION) {
    throw new MigratorError(
      ExitCode.STATE_CONFLICT,
      `The state store ${ctx.db.databaseName} has schema version ${doc.version}; this migrator understands up to ${STATE_SCHEMA_VERSION}.`,
      { hint: 'Use the migrator version that wrote it, or another --state-db.' },
    );
  }
  if (!doc || doc.version < STATE_SCHEMA_VERSION) {
    // Two processes opening a fresh store both stamp it: the loser's retry is a plain update.
    await upsertTolerantOfRace(
      () => meta.updateOne({ _id: 'schema' }, { $set: { version: STATE_SCHEMA_VERSION, updatedAt: ctx.now() } }, { upsert: true }),
      () => undefined,
    );
  }
}
