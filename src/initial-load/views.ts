import type { CollationOptions, Document, MongoClient } from 'mongodb';
import type { NamespaceRules } from '../model/namespace-filter.js';
import { mapViewPipeline, normalizeView } from '../db/compare-schema.js';
import { MigratorError } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';
import type { Logger } from '../util/logger.js';

/** A view of the selection, as the target should have it. */
export interface PlannedView {
  /** Source namespace of the view ("db.name"). */
  source: string;
  db: string;
  name: string;
  /** Target database and name (the view's own mapping). */
  target: { db: string; coll: string };
  /** The `create` options for the target: viewOn mapped to the target name of the collection it reads. */
  options: { viewOn: string; pipeline: Document[]; collation?: CollationOptions };
  /** The source collection or view it reads (same database). */
  sourceViewOn: string;
  /** viewOn names a collection mapped into another database: a view can only read its own database. */
  crossDb?: string;
}

const SYSTEM_DBS = new Set(['admin', 'local', 'config']);

/**
 * The views of the selected source databases (listCollections `type: 'view'`, options `viewOn` +
 * `pipeline` + `collation`: https://www.mongodb.com/docs/manual/reference/command/listCollections/),
 * in dependency order: a view reading another view comes after it (a view can be defined on a
 * view: https://www.mongodb.com/docs/manual/core/views/create-view/).
 *
 * `viewOn` is a collection of the view's own database; it becomes that collection's target name
 * (`--map db.coll:db.coll2`), and so do the collections its pipeline reads ($lookup, $unionWith,
 * $graphLookup: compare-schema.ts mapViewPipeline), as verify expects (verify-migration.ts
 * compareViews). A name mapped into another database is kept (a view reads only its own database).
 */
export async function listSelectedViews(source: MongoClient, rules: NamespaceRules): Promise<PlannedView[]> {
  const out: PlannedView[] = [];
  const { databases } = await source.db('admin').admin().listDatabases({ nameOnly: true });
  for (const { name: db } of databases) {
    if (SYSTEM_DBS.has(db) || !rules.includesDatabase(db)) continue;
    const infos = await source.db(db).listCollections({ type: 'view' }, { nameOnly: false }).toArray();
    const views: PlannedView[] = [];
    for (const info of infos) {
      const name = info.name;
      if (!rules.includes({ db, coll: name })) continue;
      const opts = ((info as { options?: Document }).options ?? {}) as Document;
      if (typeof opts.viewOn !== 'string') continue;
      const target = rules.target({ db, coll: name });
      const on = rules.target({ db, coll: opts.viewOn });
      // Collections the pipeline reads ($lookup, $unionWith, …) follow --map like viewOn, when they stay in the view's database.
      const rename = (coll: string) => {
        const m = rules.target({ db, coll });
        return m.db === target.db ? m.coll : coll;
      };
      const options: PlannedView['options'] = { viewOn: rename(opts.viewOn), pipeline: mapViewPipeline(opts.pipeline ?? [], rename) as Document[] };
      if (opts.collation !== undefined) options.collation = opts.collation as CollationOptions;
      views.push({ source: `${db}.${name}`, db, name, target, options, sourceViewOn: opts.viewOn, ...(on.db !== target.db ? { crossDb: `${on.db}.${on.coll}` } : {}) });
    }
    // Dependency order within the database: each round takes the views whose base is not a pending view.
    let pending = views.sort((a, b) => a.name.localeCompare(b.name));
    while (pending.length) {
      const names = new Set(pending.map((v) => v.name));
      const ready = pending.filter((v) => !names.has(readsFrom(v)));
      if (ready.length === 0) {
        out.push(...pending); // a cycle: the server refuses those, so it cannot be on the source
        break;
      }
      out.push(...ready);
      pending = pending.filter((v) => !ready.includes(v));
    }
  }
  return out;
}

/** The source name the view reads (before mapping). */
function readsFrom(v: PlannedView): string {
  return v.sourceViewOn;
}

/**
 * Creates on the target every view of the selection not there yet, after the collections were
 * restored, with `db.createCollection(name, { viewOn, pipeline, collation })`
 * (https://www.mongodb.com/docs/manual/core/views/create-view/). Idempotent: an identical view is
 * left as it is; a different view or a collection under that name is replaced only when the
 * target is loaded with --drop, otherwise the load stops (exit 4) naming it.
 */
export async function createTargetViews(p: {
  source: MongoClient;
  target: MongoClient;
  rules: NamespaceRules;
  drop: boolean;
  log: Logger;
}): Promise<{ created: string[]; existing: string[] }> {
  const created: string[] = [];
  const existing: string[] = [];
  for (const v of await listSelectedViews(p.source, p.rules)) {
    const t = `${v.target.db}.${v.target.coll}`;
    if (v.crossDb) {
      p.log.warn({ view: v.source, target: t, reads: v.crossDb }, `view ${t} reads ${v.options.viewOn}, which --map moved to ${v.crossDb}: a view reads only its own database, so it is created reading ${v.target.db}.${v.options.viewOn}`);
    }
    const db = p.target.db(v.target.db);
    const [have] = await db.listCollections({ name: v.target.coll }, { nameOnly: false }).toArray();
    if (have) {
      const same = have.type === 'view' && JSON.stringify(normalizeView(((have as { options?: Document }).options ?? {}) as Document)) === JSON.stringify(normalizeView(v.options));
      if (same) {
        existing.push(t);
        continue;
      }
      if (!p.drop) {
        throw new MigratorError(
          ExitCode.PREFLIGHT_FAILED,
          `the target already has ${have.type === 'view' ? 'a different view' : `a ${String(have.type)}`} named ${t}, where the source view ${v.source} (on ${v.options.viewOn}) goes`,
          { hint: `Drop or rename ${t} on the target, pass --drop to replace it, or leave the view out with --exclude '${v.source}'.` },
        );
      }
      await db.collection(v.target.coll).drop();
      p.log.info({ view: t }, 'target view (or collection) under the view\'s name dropped (--drop)');
    }
    await db.createCollection(v.target.coll, v.options);
    created.push(t);
    p.log.info({ view: v.source, target: t, viewOn: v.options.viewOn, stages: v.options.pipeline.length }, 'view created');
  }
  return { created, existing };
}
