import type { Document, MongoClient } from 'mongodb';
import { readShardKeys } from '../db/shard-keys.js';
import { HELD_EXPIRE_AFTER_SECONDS, ttlSeconds } from '../db/ttl-hold.js';
import { collectionsMatch, compareCollections, type CollectionDiff } from './compare-collection.js';
import { lapseCheck, sourceClock, ttlRules } from './ttl-lapse.js';
import {
  applyIgnores,
  compareIndexes,
  compareOptions,
  mapViewPipeline,
  normalizeView,
  targetKind,
  type SchemaDifference,
  type SchemaKind,
  type SchemaReport,
  type TargetKind,
} from '../db/compare-schema.js';
import { isNamespaceNotFound } from '../db/mongo-errors.js';

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
  /** A time-series collection copied once (--time-series=load-only): counted, not compared. */
  loadOnly?: boolean;
}

export interface VerificationReport {
  /** Documents equal, and no schema difference outside the ignored kinds. */
  match: boolean;
  /** Every collection's documents are equal (what `match` meant before schema was compared). */
  documentsMatch: boolean;
  namespaces: NamespaceVerification[];
  /** Index specs, collection options and views (compare-schema.ts). */
  schema: SchemaReport;
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
  opts: {
    skipDbs: Set<string>;
    maxIds?: number;
    onNamespace?: (ns: string) => void;
    /** Schema kinds the user excluded knowingly: still listed, not a mismatch. */
    ignoreSchema?: readonly SchemaKind[];
    /**
     * TTL indexes the migration holds on the target (state store, src/db/ttl-hold.ts): their held
     * expireAfterSeconds is compared as the recorded original, so a sync in progress shows no
     * difference for them.
     */
    ttlHolds?: readonly HeldTtlIndex[];
    /**
     * Only the cutover sets this, after every shard applied the barrier with writes stopped: documents
     * on one side only that the source's TTL provably expired are counted as `ttlExpired` instead of
     * missing/extra (the proof: src/verify/ttl-lapse.ts).
     */
    ttlExpiredAfterBarrier?: boolean;
    /**
     * --time-series=load-only: time-series collections were copied once and are not kept in sync
     * (change streams do not report their writes), so their documents are counted on both sides
     * and reported as load-only instead of compared; a difference there is expected, not a mismatch.
     */
    timeSeriesLoadOnly?: boolean;
  },
): Promise<VerificationReport> {
  const namespaces: NamespaceVerification[] = [];
  const schemaDiffs: Omit<SchemaDifference, 'ignored'>[] = [];
  const emit = (d: Omit<SchemaDifference, 'ignored'>) => schemaDiffs.push(d);
  const targetInfo = await targetKind(target);
  // A sharded target's shard keys (empty elsewhere): their indexes exist only on the target.
  const shardKeys = await readShardKeys(target).catch(() => new Map<string, Document>());
  const sourceNs = await listSourceNamespaces(source, sel, opts.skipDbs);
  const seenTarget = new Set<string>();
  const infos = new CollectionInfos();
  for (const ns of sourceNs) {
    const t = sel.target(ns);
    opts.onNamespace?.(`${ns.db}.${ns.coll}`);
    if (opts.timeSeriesLoadOnly && (await infos.get(source, 'source', ns.db)).get(ns.coll)?.type === 'timeseries') {
      const [sourceCount, targetCount] = await Promise.all([
        source.db(ns.db).collection(ns.coll).countDocuments(),
        target.db(t.db).collection(t.coll).countDocuments(),
      ]);
      seenTarget.add(`${t.db}.${t.coll}`);
      namespaces.push({
        source: `${ns.db}.${ns.coll}`, target: `${t.db}.${t.coll}`, match: true, loadOnly: true, sourceCount, targetCount, missing: [], extra: [],
        different: [], missingCount: 0, extraCount: 0, differentCount: 0, ttlExpired: [], ttlExpiredCount: 0, sourceHash: '', targetHash: '',
      });
      continue;
    }
    // The source's TTL indexes as they are now (what its monitor applies), for the lapse proof.
    const expiredByTtl = opts.ttlExpiredAfterBarrier ? lapseCheck(ttlRules(await listIndexSpecs(source, ns)), () => sourceClock(source)) : undefined;
    const diff = await compareCollections(source.db(ns.db).collection(ns.coll), target.db(t.db).collection(t.coll), opts.maxIds, { expiredByTtl });
    seenTarget.add(`${t.db}.${t.coll}`);
    namespaces.push({ source: `${ns.db}.${ns.coll}`, target: `${t.db}.${t.coll}`, match: collectionsMatch(diff), ...diff });
    await compareCollectionSchema(source, target, ns, t, infos, emit, targetInfo, shardKeys.get(`${t.db}.${t.coll}`), opts.ttlHolds ?? []);
  }
  await compareViews(source, target, sel, opts.skipDbs, infos, emit, new Set(sourceNs.map((n) => sel.target(n).db)));
  // Collections that exist only on the target but would belong to the migration.
  const targetDbs = new Set(sourceNs.map((n) => sel.target(n).db));
  for (const tdb of targetDbs) {
    const colls = await target.db(tdb).listCollections({}, { nameOnly: true }).toArray();
    for (const c of colls) {
      const ns = `${tdb}.${c.name}`;
      const from = sel.sourceOf({ db: tdb, coll: c.name });
      // Views hold no documents of their own (compared by compareViews).
      if (c.name.startsWith('system.') || c.type === 'view' || seenTarget.has(ns) || !from || !sel.includes(from)) continue;
      const count = await target.db(tdb).collection(c.name).countDocuments();
      if (count === 0) continue;
      namespaces.push({
        source: '', target: ns, match: false, sourceCount: 0, targetCount: count, missing: [], extra: [],
        different: [], missingCount: 0, extraCount: count, differentCount: 0, ttlExpired: [], ttlExpiredCount: 0, sourceHash: '', targetHash: '',
      });
    }
  }
  const documentsMatch = namespaces.every((n) => n.match);
  const schema = applyIgnores(schemaDiffs, opts.ignoreSchema ?? []);
  return { match: documentsMatch && schema.match, documentsMatch, namespaces, schema };
}

/** listCollections of a database, read once per side and database. */
class CollectionInfos {
  private readonly cache = new Map<string, Promise<Map<string, Document>>>();
  get(client: MongoClient, side: 'source' | 'target', db: string): Promise<Map<string, Document>> {
    const key = `${side}\0${db}`;
    let p = this.cache.get(key);
    if (!p) {
      p = client.db(db).listCollections({}, { nameOnly: false }).toArray().then((l) => new Map(l.map((c) => [c.name, c as Document])));
      this.cache.set(key, p);
    }
    return p;
  }
}

async function listIndexSpecs(client: MongoClient, ns: CollectionNs): Promise<Document[]> {
  try {
    return await client.db(ns.db).collection(ns.coll).listIndexes().toArray();
  } catch (err) {
    if (isNamespaceNotFound(err)) return []; // no collection, no indexes
    throw err;
  }
}

/** Index specs and collection options of one migrated collection on both sides. */
async function compareCollectionSchema(
  source: MongoClient,
  target: MongoClient,
  s: CollectionNs,
  t: CollectionNs,
  infos: CollectionInfos,
  emit: (d: Omit<SchemaDifference, 'ignored'>) => void,
  targetInfo: TargetKind | undefined,
  targetShardKey: Document | undefined,
  ttlHolds: readonly HeldTtlIndex[],
): Promise<void> {
  const ns = { source: `${s.db}.${s.coll}`, target: `${t.db}.${t.coll}` };
  const sInfo = (await infos.get(source, 'source', s.db)).get(s.coll);
  const tInfo = (await infos.get(target, 'target', t.db)).get(t.coll);
  if (!sInfo) return; // dropped on the source since it was listed
  if (!tInfo) {
    emit({
      kind: 'options', ...ns, name: '(collection)', difference: 'missing', sourceSpec: { type: sInfo.type ?? 'collection' }, targetSpec: null,
      detail: `collection ${ns.target} does not exist on the target`,
    });
    return;
  }
  if ((sInfo.type ?? 'collection') !== (tInfo.type ?? 'collection')) {
    emit({
      kind: 'options', ...ns, name: '(type)', difference: 'different', sourceSpec: { type: sInfo.type }, targetSpec: { type: tInfo.type },
      detail: `source ${ns.source} is a ${String(sInfo.type)}, target ${ns.target} a ${String(tInfo.type)}`,
    });
  }
  compareOptions(ns, (sInfo.options ?? {}) as Document, (tInfo.options ?? {}) as Document, emit, targetInfo);
  const targetSpecs = unholdTtl(await listIndexSpecs(target, t), t, ttlHolds);
  compareIndexes(ns, await listIndexSpecs(source, s), targetSpecs, emit, targetInfo, targetShardKey);
}

/** A TTL index held on the target during the sync (src/db/ttl-hold.ts): target namespace, name, recorded original. */
export interface HeldTtlIndex {
  db: string;
  coll: string;
  name: string;
  originalExpireAfterSeconds: number;
}

/**
 * Target index specs as the migration will leave them: a TTL index at the held value whose hold is
 * recorded gets its recorded original back (it is restored at the cutover). Without a record, the
 * held value stays and is reported like any other difference.
 */
export function unholdTtl(specs: Document[], t: CollectionNs, holds: readonly HeldTtlIndex[]): Document[] {
  return specs.map((spec) => {
    if (ttlSeconds(spec.expireAfterSeconds) !== HELD_EXPIRE_AFTER_SECONDS) return spec;
    const h = holds.find((x) => x.db === t.db && x.coll === t.coll && x.name === spec.name);
    return h ? { ...spec, expireAfterSeconds: h.originalExpireAfterSeconds } : spec;
  });
}

/**
 * Views of the selection (listCollections `type: 'view'`, options `viewOn` + `pipeline`,
 * https://www.mongodb.com/docs/manual/reference/command/create/#std-label-create-view): each must
 * exist on the target under its mapped name, reading the mapped name of its source collection,
 * with the same pipeline and collation. Views only on the target (in a migrated database) are extra.
 */
async function compareViews(
  source: MongoClient,
  target: MongoClient,
  sel: NamespaceSelection,
  skipDbs: Set<string>,
  infos: CollectionInfos,
  emit: (d: Omit<SchemaDifference, 'ignored'>) => void,
  targetDbs: Set<string>,
): Promise<void> {
  const seen = new Set<string>();
  const { databases } = await source.db('admin').admin().listDatabases({ nameOnly: true });
  for (const { name: db } of databases) {
    if (SYSTEM_DBS.has(db) || skipDbs.has(db)) continue;
    for (const [name, info] of await infos.get(source, 'source', db)) {
      if (info.type !== 'view' || !sel.includes({ db, coll: name })) continue;
      const t = sel.target({ db, coll: name });
      targetDbs.add(t.db);
      seen.add(`${t.db}.${t.coll}`);
      const opts = (info.options ?? {}) as Document;
      // The view reads a collection of its own database: on the target, that collection's mapped name.
      const on = typeof opts.viewOn === 'string' ? sel.target({ db, coll: opts.viewOn }) : undefined;
      const rename = (coll: string) => {
        const m = sel.target({ db, coll });
        return m.db === t.db ? m.coll : coll;
      };
      const want = normalizeView({ ...opts, pipeline: mapViewPipeline(opts.pipeline ?? [], rename) }, on && on.db === t.db ? on.coll : undefined);
      const tInfo = (await infos.get(target, 'target', t.db)).get(t.coll);
      const ns = { source: `${db}.${name}`, target: `${t.db}.${t.coll}` };
      if (!tInfo || tInfo.type !== 'view') {
        emit({
          kind: 'views', ...ns, name, difference: 'missing', sourceSpec: want, targetSpec: tInfo ? { type: tInfo.type } : null,
          detail: `view ${ns.target} (on ${String(want.viewOn)}) ${tInfo ? `is a ${String(tInfo.type)} on the target, not a view` : 'is missing on the target'}`,
        });
        continue;
      }
      const got = normalizeView((tInfo.options ?? {}) as Document);
      if (JSON.stringify(want) !== JSON.stringify(got)) {
        emit({
          kind: 'views', ...ns, name, difference: 'different', sourceSpec: want, targetSpec: got,
          detail: `view ${ns.target} differs: source ${JSON.stringify(want)}, target ${JSON.stringify(got)}`,
        });
      }
    }
  }
  for (const tdb of targetDbs) {
    for (const [name, info] of await infos.get(target, 'target', tdb)) {
      const from = sel.sourceOf({ db: tdb, coll: name });
      if (info.type !== 'view' || seen.has(`${tdb}.${name}`) || !from) continue;
      emit({
        kind: 'views', source: '', target: `${tdb}.${name}`, name, difference: 'extra', sourceSpec: null,
        targetSpec: normalizeView((info.options ?? {}) as Document),
        detail: `view ${tdb}.${name} exists only on the target`,
      });
    }
  }
}
