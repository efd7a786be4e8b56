/**
 * The DDL of a change stream replayed on the target: drop, rename, dropDatabase here, the schema
 * events (create, createIndexes, dropIndexes, modify) through schema-replay.ts. Each step checks
 * the target first, so a replay of the DDL is a no-op (IDEMPOTENT, see writer.ts). Runs after the
 * writer has applied everything before the DDL and the DDL gate let it through.
 */
import { isSchemaOp, type ChangeEnvelope, type CollectionNamespace } from '../model/change-envelope.js';
import { ApplyWriteError, RetriesExhaustedError, UnmappableDdlError, isNamespaceNotFound, isTransientError } from './errors.js';
import { replaySchemaEvent, type SchemaReplayContext } from './schema-replay.js';

const nsName = (ns: CollectionNamespace) => `${ns.db}.${ns.coll}`;

export class DdlReplay {
  constructor(
    private readonly c: SchemaReplayContext,
    /** The shard's stop (shutdown, lease lost, another shard failed): see the schema events below. */
    private readonly signal?: AbortSignal,
  ) {}

  private async exists(ns: CollectionNamespace): Promise<boolean> {
    const found = await this.c.retry(`listCollections ${ns.db}`, () =>
      this.c.client.db(ns.db).listCollections({ name: ns.coll }, { nameOnly: true }).toArray(),
    );
    return found.length > 0;
  }

  private async dropCollection(ns: CollectionNamespace): Promise<void> {
    await this.c.retry(`drop ${nsName(ns)}`, async () => {
      try {
        await this.c.client.db(ns.db).collection(ns.coll).drop();
      } catch (err) {
        if (!isNamespaceNotFound(err)) throw err; // dropping a missing collection is done already
      }
    });
  }

  async apply(e: ChangeEnvelope, index: number): Promise<void> {
    try {
      if (e.op === 'drop') {
        await this.dropCollection(this.c.rules.target({ db: e.ns.db, coll: e.ns.coll! }));
      } else if (e.op === 'rename') {
        await this.applyRename(e, index);
      } else if (e.op === 'dropDatabase') {
        await this.applyDropDatabase(e.ns.db);
      } else if (isSchemaOp(e.op)) {
        // create / createIndexes / dropIndexes / modify (showExpandedEvents): schema-replay.ts.
        try {
          await replaySchemaEvent(this.c, e);
        } catch (err) {
          // Stopped while replaying (the lease fence or the retry refused to go on): the DDL did
          // not run; it must fail the batch (replayed later), not pass as "refused by the target",
          // which would mark it applied for every shard and checkpoint past it.
          if (isTransientError(err) || err instanceof RetriesExhaustedError || this.signal?.aborted) throw err;
          // A schema change the target refuses (e.g. an index type or collection option Amazon
          // DocumentDB does not support) does not stop replication: the documents still arrive,
          // the cutover's reconcile tries again and its verification names the difference (exit 7).
          this.c.logger?.warn(
            { op: e.op, ns: `${e.ns.db}.${e.ns.coll ?? ''}`, index, err: (err as Error).message },
            'the target refused a schema change replayed from the source: replication goes on; the cutover reconcile retries it and verification reports it if it still differs',
          );
        }
      }
    } catch (err) {
      if (err instanceof UnmappableDdlError || err instanceof ApplyWriteError || isTransientError(err)) throw err;
      throw new ApplyWriteError(`${e.op} of ${e.ns.db}${e.ns.coll ? '.' + e.ns.coll : ''} failed on the target: ${(err as Error).message}`, { index }, { cause: err });
    }
  }

  private async applyRename(e: ChangeEnvelope, index: number): Promise<void> {
    const src = { db: e.ns.db, coll: e.ns.coll! };
    const dst = e.to!;
    const srcIn = this.c.rules.includes(src);
    const dstIn = this.c.rules.includes(dst);
    if (!srcIn && dstIn) {
      throw new UnmappableDdlError(
        `rename ${nsName(src)} → ${nsName(dst)} brings a collection that is not migrated into a migrated ` +
          `namespace; its documents never reached the target. Re-run the initial load of ${nsName(dst)} ` +
          'or include the source namespace.',
        index,
      );
    }
    const from = this.c.rules.target(src);
    if (!dstIn) {
      // The collection leaves the migrated set: on the target it disappears.
      await this.dropCollection(from);
      return;
    }
    const to = this.c.rules.target(dst);
    if (nsName(from) === nsName(to)) return;
    // Source missing (target present or not) = already renamed, or nothing to move.
    if (!(await this.exists(from))) return;
    // The source rename replaced any existing target (dropTarget). Done in two idempotent steps
    // because not every engine implements dropTarget (the target is not live before cutover).
    if (await this.exists(to)) await this.dropCollection(to);
    await this.c.retry(`renameCollection ${nsName(from)} → ${nsName(to)}`, async () => {
      try {
        await this.c.client.db('admin').command({ renameCollection: nsName(from), to: nsName(to) });
      } catch (err) {
        if (isNamespaceNotFound(err)) return; // a previous attempt did it
        if (isTransientError(err)) throw err;
        if (from.db !== to.db) {
          throw new UnmappableDdlError(
            `the target refused the cross-database rename ${nsName(from)} → ${nsName(to)}: ${(err as Error).message}`,
            index,
            { cause: err },
          );
        }
        throw err;
      }
    });
  }

  /**
   * dropDatabase: drops the target collections that come from the dropped source database
   * (MongoDB sends a drop per collection first; this also covers engines that do not). Target
   * collections that are not ours (no included source maps to them) are left alone.
   */
  private async applyDropDatabase(sourceDb: string): Promise<void> {
    const targetDb = this.c.rules.targetDb(sourceDb);
    const targets = new Map<string, CollectionNamespace>();
    const names = await this.c.retry(`listCollections ${targetDb}`, () =>
      this.c.client.db(targetDb).listCollections({}, { nameOnly: true }).toArray(),
    );
    for (const { name } of names) {
      const t = { db: targetDb, coll: name as string };
      if (this.c.rules.isProtected(t)) continue;
      if (this.c.rules.sourceOf(t)?.db === sourceDb) targets.set(nsName(t), t);
    }
    for (const m of this.c.rules.maps) {
      if (m.kind === 'coll' && m.from.db === sourceDb && this.c.rules.includes(m.from)) targets.set(nsName(m.to), m.to);
    }
    for (const t of targets.values()) await this.dropCollection(t);
  }
}
