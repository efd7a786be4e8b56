import type { MongoClient } from 'mongodb';
import { collectionsMatch, compareCollections, type CollectionDiff } from './compare-collection.js';

export interface NamespaceSelection {
  /** Whether a source collection takes part in the migration. */
  includes(db: string, coll: string): boolean;
  /** The target database of a source database (`--map`). */
  targetDb(db: string): string;
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
      if (sel.includes(db, c.name)) out.push({ db, coll: c.name });
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
  for (const { db, coll } of sourceNs) {
    const tdb = sel.targetDb(db);
    opts.onNamespace?.(`${db}.${coll}`);
    const diff = await compareCollections(source.db(db).collection(coll), target.db(tdb).collection(coll), opts.maxIds);
    seenTarget.add(`${tdb}.${coll}`);
    namespaces.push({ source: `${db}.${coll}`, target: `${tdb}.${coll}`, match: collectionsMatch(diff), ...diff });
  }
  // Collections that exist only on the target, in databases the migration writes to.
  const targetDbs = new Map(sourceNs.map((n) => [sel.targetDb(n.db), n.db]));
  for (const [tdb, sdb] of targetDbs) {
    const colls = await target.db(tdb).listCollections({}, { nameOnly: true }).toArray();
    for (const c of colls) {
      const ns = `${tdb}.${c.name}`;
      if (c.name.startsWith('system.') || seenTarget.has(ns) || !sel.includes(sdb, c.name)) continue;
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
