import type { MongoClient } from 'mongodb';
import { collectionsMatch, compareCollections, type CollectionDiff } from './compare-collection.js';

export interface CollectionNs {
  db: string;
  coll: string;
}

/** The migration's namespace rules (NamespaceRules satisfies this). */
export interface NamespaceSelection {
  /** Whether a source collection takes part in the migration. */
  includes(ns: CollectionNs): boolean;
  /** Where a source collection lands on the target (`--map`). */
  target(ns: CollectionNs): CollectionNs;
  /** The source collection a target collection comes from, if any. */
  sourceOf(ns: CollectionNs): CollectionNs | undefined;
}

export interface NamespaceVerification extends CollectionDiff {
  source: string;
  target: string;
  match: boolean;
}

export interface VerificationReport {
  match: boolean;
  namespaces: NamespaceVerification[];
}

const SYSTEM_DBS = new Set(['admin', 'local', 'config']);

/** Source collections in the migration, sorted; views and system collections are not data. */
export async function listSourceNamespaces(client: MongoClient, sel: NamespaceSelection, skipDbs: Set<string>) {
  const out: { db: string; coll: string }[] = [];
  const { databases } = await client.db('admin').admin().listDatabases({ nameOnly: true });
  for (const { name: db } of databases) {
    if (SYSTEM_DBS.has(db) || skipDbs.has(db)) continue;
    const colls = await client.db(db).listCollections({}, { nameOnly: false }).toArray();
    for (const c of colls) {
      if (c.name.startsWith('system.') || (c as { type?: string }).type === 'view') continue;
      if (sel.includes({ db, coll: c.name })) out.push({ db, coll: c.name });
    }
  }
  return out.sort((a, b) => (a.db + '.' + a.coll).localeCompare(b.db + '.' + b.coll));
}

/**
 * Compares every migrated collection document by document (canonical BSON, `_id` order).
 * Target collections that have no source counterpart in a mapped database are reported as extra.
 */
export async function verifyMigration(
  source: MongoClient,
  target: MongoClient,
  sel: NamespaceSelection,
  opts: { skipDbs: Set<string>; maxIds?: number; onNamespace?: (ns: string) => void },
): Promise<VerificationReport> {
  const namespaces: NamespaceVerification[] = [];
  const sourceNs = await listSourceNamespaces(source, sel, opts.skipDbs);
  const seenTarget = new Set<string>();
  for (const ns of sourceNs) {
    const t = sel.target(ns);
    opts.onNamespace?.(`${ns.db}.${ns.coll}`);
    const diff = await compareCollections(source.db(ns.db).collection(ns.coll), target.db(t.db).collection(t.coll), opts.maxIds);
    seenTarget.add(`${t.db}.${t.coll}`);
    namespaces.push({ source: `${ns.db}.${ns.coll}`, target: `${t.db}.${t.coll}`, match: collectionsMatch(diff), ...diff });
  }
  // Collections that exist only on the target but would belong to the migration.
  const targetDbs = new Set(sourceNs.map((n) => sel.target(n).db));
  for (const tdb of targetDbs) {
    const colls = await target.db(tdb).listCollections({}, { nameOnly: true }).toArray();
    for (const c of colls) {
      const ns = `${tdb}.${c.name}`;
      const from = sel.sourceOf({ db: tdb, coll: c.name });
      if (c.name.startsWith('system.') || seenTarget.has(ns) || !from || !sel.includes(from)) continue;
      const count = await target.db(tdb).collection(c.name).countDocuments();
      if (count === 0) continue;
      namespaces.push({
        source: '', target: ns, match: false, sourceCount: 0, targetCount: count, missing: [], extra: [],
        different: [], missingCount: 0, extraCount: count, differentCount: 0, sourceHash: '', targetHash: '',
      });
    }
  }
  return { match: namespaces.every((n) => n.match), namespaces };
}
