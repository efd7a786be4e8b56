/**
 * Indexes after data (issue #13; what mongosync calls `afterDataCopy`): every collection is
 * loaded with `mongorestore --noIndexRestore`
 * (https://www.mongodb.com/docs/database-tools/mongorestore/#std-option-mongorestore.--noIndexRestore)
 * and its indexes are built afterwards by an 'indexes' load unit of its own (load-plan.ts), once
 * all its data is in: inserting into a collection with no secondary index is cheaper than keeping
 * every index up to date document by document, and a build over the loaded data is one pass per
 * index. The units run in parallel across collections, bounded like every load unit by
 * --load-parallelism per process (load-worker.ts).
 *
 * The specs come from the source's listIndexes, as the split collections' builds always took them
 * (https://www.mongodb.com/docs/manual/reference/command/listIndexes/): the dump's metadata is the
 * same listIndexes output, read earlier.
 */
import type { Document, MongoClient } from 'mongodb';
import { indexSpecForCreate } from '../apply/schema-replay.js';
import type { LoadIndexProgress, LoadUnitDoc } from '../state/store.js';
import { MigratorError, errorMessage } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';
import type { Logger } from '../util/logger.js';
import { isDuplicateKey, isNamespaceNotFound } from '../db/mongo-errors.js';

/**
 * The indexes of a source collection that are built after its data: all but the `_id` index,
 * which the collection has from its creation (https://www.mongodb.com/docs/manual/indexes/#default-_id-index),
 * clustered or not (a clustered collection's clustered index is created with the collection:
 * https://www.mongodb.com/docs/manual/core/clustered-collections/). A collection that no longer
 * exists (NamespaceNotFound, 26: dropped since) has none: its drop reaches the target through the
 * change stream.
 */
export async function indexesToBuild(source: MongoClient, db: string, coll: string): Promise<Document[]> {
  const specs = await source
    .db(db)
    .collection(coll)
    .listIndexes()
    .toArray()
    .catch((err: unknown) => {
      if (isNamespaceNotFound(err)) return [];
      throw err;
    });
  return (specs as Document[]).filter((s) => s.name !== '_id_' && s.clustered !== true);
}

/**
 * Builds a collection's indexes on its target with createIndexes
 * (https://www.mongodb.com/docs/manual/reference/command/createIndexes/), one at a time so that a
 * failure names its index and `status` can say which one is building; `onProgress` gets the
 * state before each build and after the last. An index already there with the same name and spec
 * is a no-op ("If you call db.collection.createIndex() with the same index specification … the
 * operation does not recreate the index":
 * https://www.mongodb.com/docs/manual/reference/method/db.collection.createIndex/#recreating-an-existing-index),
 * so a rerun after a crash redoes the whole list safely. A unique index that the data violates
 * fails with DuplicateKey (11000): reported with the index and the collection (exit 11).
 */
export async function buildIndexes(
  p: { source: MongoClient; target: MongoClient },
  u: Pick<LoadUnitDoc, 'sourceDb' | 'coll' | 'target'>,
  log: Logger,
  opts: { signal?: AbortSignal; onProgress?: (state: LoadIndexProgress) => void } = {},
): Promise<{ documents: number; bytes: number }> {
  const dot = u.target!.indexOf('.');
  const t = { db: u.target!.slice(0, dot), coll: u.target!.slice(dot + 1) };
  const specs = await indexesToBuild(p.source, u.sourceDb, u.coll!);
  const names = specs.map((s) => String(s.name));
  const built: string[] = [];
  for (const spec of specs) {
    if (opts.signal?.aborted) break;
    const name = String(spec.name);
    opts.onProgress?.({ built: [...built], pending: names.slice(built.length), building: name });
    try {
      // `v` (index version), `ns` (before 4.4) and `background` describe the source's build, not the index.
      await p.target.db(t.db).command({ createIndexes: t.coll, indexes: [indexSpecForCreate(spec)] });
    } catch (err) {
      opts.onProgress?.({ built: [...built], pending: names.slice(built.length), building: null });
      throw indexBuildError(err, spec, u);
    }
    built.push(name);
  }
  opts.onProgress?.({ built: [...built], pending: names.slice(built.length), building: null });
  log.info({ ns: u.target, indexes: built.length }, 'indexes built');
  return { documents: 0, bytes: 0 };
}

function indexBuildError(err: unknown, spec: Document, u: Pick<LoadUnitDoc, 'sourceDb' | 'coll' | 'target'>): MigratorError {
  if (isDuplicateKey(err)) {
    return new MigratorError(
      ExitCode.TOOL_FAILED,
      `The unique index ${String(spec.name)} ${JSON.stringify(spec.key)} of ${u.target} (from ${u.sourceDb}.${u.coll}) could not be built: the loaded data violates it (${errorMessage(err)}).`,
      { hint: 'Duplicates on the source that its index did not see (e.g. a collation or a partial filter the target treats differently): fix the data or the index, then rerun; only the index build is redone.' },
    );
  }
  return new MigratorError(ExitCode.TOOL_FAILED, `Index ${String(spec.name)} of ${u.target} could not be built: ${errorMessage(err)}`, {
    hint: 'Fix the cause above and rerun: only the index build is redone.',
  });
}
