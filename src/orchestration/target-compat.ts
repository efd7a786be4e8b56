import { BSON, type Document, type MongoClient } from 'mongodb';
import type { NamespaceRules } from '../model/namespace-filter.js';
import { listSelectedViews } from '../initial-load/views.js';
import { documentDbRefusalItems } from '../db/documentdb-compat.js';
import { isTransientError } from '../db/transient-errors.js';
import type { ServerInfo } from '../db/server-info.js';
import { isMaxTimeExpired } from '../db/mongo-errors.js';

/**
 * The compatibility doctor: everything of the selection the target cannot hold, found before
 * anything is copied, each with its remedy, all in one report (preflight and
 * `migrator check --target-compat` print the same one).
 */

/** What `--time-series` asks for a time-series collection of the selection. */
export type TimeSeriesMode = 'refuse' | 'load-only';

export interface CompatItem {
  /** Source namespace ("db.coll"), or "db" for a database-wide item. */
  namespace: string;
  /** The index, option or feature: "capped collection", "2d index loc_2d", "field names"… */
  item: string;
  problem: string;
  remedy: string;
  /** false: printed, but the migration may go on (documents near the size limit). */
  blocking: boolean;
}

export interface CompatReport {
  target: { flavor: ServerInfo['flavor']; version: string };
  items: CompatItem[];
  /** Source time-series collections the migration copies once (--time-series=load-only). */
  loadOnly: string[];
  /** How documents were examined: field names always on a sample, sizes with $bsonSize or on the sample. */
  sampling: { documentsPerCollection: number; collections: number; documentsRead: number; sizes: 'bsonSize' | 'sample' | 'none' };
}

export interface CompatInput {
  source: MongoClient;
  sourceInfo?: ServerInfo;
  target: ServerInfo;
  namespaces: { db: string; coll: string }[];
  rules: NamespaceRules;
  timeSeries: TimeSeriesMode;
  /** Documents read per collection for field names (and sizes where $bsonSize is unavailable). Default 1000. */
  sampleSize?: number;
}

/** The most documents read per collection by default: bounded cost on any source. */
export const DEFAULT_SAMPLE_SIZE = 1000;

/**
 * The largest document the target stores. MongoDB: 16 MiB (16,777,216 bytes,
 * https://www.mongodb.com/docs/manual/reference/limits/#mongodb-limit-BSON-Document-Size).
 * Amazon DocumentDB: "16 MB" (https://docs.aws.amazon.com/documentdb/latest/developerguide/limits.html);
 * whether that is 10^6 or 2^20 bytes is undocumented, so the smaller reading is taken: a document
 * between 16,000,000 bytes and 16 MiB is reported rather than failing in the middle of the load.
 * FerretDB: MongoDB's limit (undocumented otherwise).
 */
export function maxDocumentBytes(target: Pick<ServerInfo, 'flavor'>): number {
  return target.flavor === 'documentdb' ? 16_000_000 : 16 * 1024 * 1024;
}

/**
 * A document within this many bytes of the limit is listed (not blocking): an update that grows
 * it fails on the source itself, and its change event (which carries the full document after an
 * update lookup) can exceed 16 MiB where the source cannot split events
 * ($changeStreamSplitLargeEvent: MongoDB 7.0 and 6.0.9, see src/source/large-events.ts).
 */
export const NEAR_LIMIT_MARGIN = 512 * 1024;

const FERRETDB_NOTE = 'observed on FerretDB v1, which answers NotImplemented (238) or refuses the key; https://docs.ferretdb.io/migration/compatibility/';

/**
 * Which field names the target refuses to store:
 * - MongoDB before 5.0: top-level names starting with $ ("Top-level field names cannot start with
 *   the dollar sign ($) character. Otherwise, starting in MongoDB 3.6, the server permits storage of
 *   field names that contain dots and dollar signs":
 *   https://www.mongodb.com/docs/v4.4/reference/limits/#Restrictions-on-Field-Names); 5.0 stores
 *   them all (https://www.mongodb.com/docs/manual/core/dot-dollar-considerations/).
 * - Amazon DocumentDB: its guide says nothing about such names (its API list has neither the 5.0
 *   change nor $getField/$setField: https://docs.aws.amazon.com/documentdb/latest/developerguide/mongo-apis.html),
 *   so every $-prefixed or dotted name is reported (undocumented: the less convenient answer).
 * - FerretDB v1: any $-prefixed or dotted name, nested too ("invalid key", code 2: observed).
 */
function refusedFieldNames(t: ServerInfo): 'none' | 'top-level-dollar' | 'all' {
  if (t.flavor !== 'mongodb') return 'all';
  return Number.parseInt(t.version, 10) < 5 ? 'top-level-dollar' : 'none';
}

/** Field names starting with '$' or holding '.', anywhere in the document (arrays included); with
 *  `topLevelDollarOnly`, only top-level names starting with '$'. */
export function dotDollarFields(doc: unknown, opts: { topLevelDollarOnly?: boolean } = {}, prefix = '', out: string[] = [], limit = 5): string[] {
  if (out.length >= limit || doc === null || typeof doc !== 'object') return out;
  if (Array.isArray(doc)) {
    if (!opts.topLevelDollarOnly) for (const v of doc) dotDollarFields(v, opts, `${prefix}[]`, out, limit);
    return out;
  }
  // BSON values (ObjectId, Date, Binary…) are leaves; only plain documents have field names.
  const proto = Object.getPrototypeOf(doc) as unknown;
  if (proto !== Object.prototype && proto !== null) return out;
  for (const [k, v] of Object.entries(doc as Record<string, unknown>)) {
    const path = prefix ? `${prefix}.${k}` : k;
    const refused = opts.topLevelDollarOnly ? k.startsWith('$') : k.startsWith('$') || k.includes('.');
    if (refused && out.length < limit) out.push(JSON.stringify(path));
    if (!opts.topLevelDollarOnly) dotDollarFields(v, opts, path, out, limit);
  }
  return out;
}

/** Whether the source has $bsonSize (MongoDB 4.4+: https://www.mongodb.com/docs/manual/reference/operator/aggregation/bsonSize/;
 *  Amazon DocumentDB lists it as unsupported: https://www.mongodb.com/docs/drivers/documentdb-support/). */
function hasBsonSize(s: ServerInfo | undefined): boolean {
  if (!s || s.flavor !== 'mongodb') return false;
  const [maj = 0, min = 0] = s.version.split('.').map((x) => Number.parseInt(x, 10));
  return maj > 4 || (maj === 4 && min >= 4);
}

/** How long the $bsonSize scan of one collection may run (maxTimeMS); past it, the sample is measured instead. */
export const BSON_SIZE_SCAN_MS = 60_000;
/** How long all $bsonSize scans of one report may take together. */
export const BSON_SIZE_TOTAL_MS = 300_000;

/**
 * Documents of one collection at or above `threshold` bytes, with $bsonSize (a server-side scan
 * returning at most `limit` small documents, stopped by the server after BSON_SIZE_SCAN_MS:
 * MaxTimeMSExpired, 50). 'refused' when the server does not know the expression, 'timeout' when
 * the scan ran out of time: the caller then measures its sample instead, and says so.
 */
async function largeDocumentsBySize(
  source: MongoClient,
  ns: { db: string; coll: string },
  threshold: number,
  limit: number,
  maxTimeMS: number,
): Promise<{ _id: unknown; size: number }[] | 'refused' | 'timeout'> {
  try {
    return (await source
      .db(ns.db)
      .collection(ns.coll)
      .aggregate(
        [
          { $match: { $expr: { $gte: [{ $bsonSize: '$$ROOT' }, threshold] } } },
          { $project: { _id: 1, size: { $bsonSize: '$$ROOT' } } },
          { $limit: limit },
        ],
        { maxTimeMS },
      )
      .toArray()) as { _id: unknown; size: number }[];
  } catch (err) {
    if (isMaxTimeExpired(err)) return 'timeout';
    if (isTransientError(err)) throw err;
    return 'refused';
  }
}

/** The value at a dotted path (no array traversal: a 2dsphere key names a field of the document). */
function valueAt(doc: Document, path: string): unknown {
  let v: unknown = doc;
  for (const part of path.split('.')) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

const isGeoJsonPoint = (v: unknown) => typeof v === 'object' && v !== null && (v as { type?: unknown }).type === 'Point' && Array.isArray((v as { coordinates?: unknown }).coordinates);
const geoShape = (v: unknown) => (typeof v === 'object' && v !== null && typeof (v as { type?: unknown }).type === 'string' ? `a ${String((v as { type: string }).type)}` : Array.isArray(v) ? 'a legacy coordinate pair' : typeof v);

const excludeFlag = (ns: string) => `--exclude '${ns}'`;

type Large = { _id: unknown; size: number };

/** One doctor run: its input, what it knows of the target, the items found, and the size-scan budget. */
interface CompatRun {
  p: CompatInput;
  t: ServerInfo;
  major: number;
  targetName: string;
  sampleSize: number;
  /** The target's document size limit, and where "near" it starts. */
  limit: number;
  nearLimit: number;
  items: CompatItem[];
  loadOnly: string[];
  add(namespace: string, item: string, problem: string, remedy: string, blocking?: boolean): void;
  /** $bsonSize scans still used (false once refused or out of budget), their deadline. */
  useBsonSize: boolean;
  scanDeadline: number;
  sizes: CompatReport['sampling']['sizes'];
  documentsRead: number;
}

export async function targetCompatibility(p: CompatInput): Promise<CompatReport> {
  const run = newRun(p);
  const byDb = new Map<string, Set<string>>();
  for (const n of p.namespaces) byDb.set(n.db, (byDb.get(n.db) ?? new Set()).add(n.coll));
  for (const [db, colls] of byDb) {
    const infos = await p.source.db(db).listCollections({}, { nameOnly: false }).toArray();
    for (const info of infos) if (colls.has(info.name)) await examineCollection(run, db, info as Document);
  }
  await checkViews(run);
  return {
    target: { flavor: run.t.flavor, version: run.t.version },
    items: run.items,
    loadOnly: run.loadOnly,
    sampling: { documentsPerCollection: run.sampleSize, collections: p.namespaces.length, documentsRead: run.documentsRead, sizes: run.sizes },
  };
}

function newRun(p: CompatInput): CompatRun {
  const t = p.target;
  const limit = maxDocumentBytes(t);
  const items: CompatItem[] = [];
  // The whole-collection $bsonSize scan only where it can find a blocking item: a target whose
  // limit is below MongoDB's 16 MiB (DocumentDB), since no MongoDB source holds a larger document.
  // Elsewhere only "near the limit" warnings are possible, and the sample is enough for those.
  // The scans together stop after BSON_SIZE_TOTAL_MS (then the samples are measured).
  const useBsonSize = hasBsonSize(p.sourceInfo) && limit < 16 * 1024 * 1024;
  return {
    p,
    t,
    major: Number.parseInt(t.version, 10),
    targetName: t.flavor === 'documentdb' ? `Amazon DocumentDB ${t.version}` : t.flavor === 'ferretdb' ? `FerretDB (reports ${t.version})` : `MongoDB ${t.version}`,
    sampleSize: p.sampleSize ?? DEFAULT_SAMPLE_SIZE,
    limit,
    nearLimit: limit - NEAR_LIMIT_MARGIN,
    items,
    loadOnly: [],
    add: (namespace, item, problem, remedy, blocking = true) => items.push({ namespace, item, problem, remedy, blocking }),
    useBsonSize,
    scanDeadline: Date.now() + BSON_SIZE_TOTAL_MS,
    sizes: p.namespaces.length ? (useBsonSize ? 'bsonSize' : 'sample') : 'none',
    documentsRead: 0,
  };
}

/** Everything the doctor checks of one selected collection. */
async function examineCollection(run: CompatRun, db: string, info: Document): Promise<void> {
  const { p, t } = run;
  const ns = `${db}.${String(info.name)}`;
  const options = ((info as { options?: Document }).options ?? {}) as Record<string, unknown>;
  const indexes = (await p.source.db(db).collection(info.name).listIndexes().toArray()) as Record<string, unknown>[];
  checkTimeSeries(run, ns, info, options);
  if (t.flavor === 'documentdb') {
    for (const r of documentDbRefusalItems(t.version, options, indexes)) run.add(ns, r.item, r.problem, r.remedy);
  } else if (t.flavor === 'ferretdb') {
    for (const r of ferretDbRefusalItems(options, indexes)) run.add(ns, r.item, r.problem, r.remedy);
  } else {
    for (const r of olderMongoDbRefusals(t.version, options)) run.add(ns, r.item, r.problem, r.remedy);
  }
  const sampledLarge = await checkSample(run, db, String(info.name), indexes);
  const large = await largeDocuments(run, db, info, sampledLarge);
  addSizeItems(run, ns, large);
}

/**
 * Time-series: change streams do not report their writes ("Time series collections don't
 * support change streams": https://www.mongodb.com/docs/manual/core/timeseries/timeseries-limitations/),
 * so they can be copied once at most, and only into a target that has them (MongoDB 5.0+:
 * https://www.mongodb.com/docs/manual/core/timeseries-collections/; not DocumentDB:
 * https://www.mongodb.com/docs/drivers/documentdb-support/; not FerretDB v1: observed).
 */
function checkTimeSeries(run: CompatRun, ns: string, info: Document, options: Record<string, unknown>): void {
  const isTimeseries = (info as { type?: string }).type === 'timeseries' || options.timeseries !== undefined;
  if (!isTimeseries) return;
  const targetHasThem = run.t.flavor === 'mongodb' && run.major >= 5;
  if (!targetHasThem) {
    run.add(ns, 'time-series collection', `${run.targetName} has no time-series collections`, `Leave it out (${excludeFlag(ns)}) and keep its data elsewhere, or copy its measurements into an ordinary collection on the source and migrate that.`);
  } else if (run.p.timeSeries === 'load-only') {
    run.loadOnly.push(ns);
  } else {
    run.add(
      ns,
      'time-series collection',
      'change streams do not report writes to time-series collections, so measurements written during the migration would never reach the target',
      `Choose: leave it out (${excludeFlag(ns)}), or copy it once in the initial load and not keep it in sync (--time-series=load-only, MIGRATOR_TIME_SERIES=load-only, or "time-series: load-only" in --config).`,
    );
  }
}

/**
 * Documents: field names on a bounded sample (the first `sampleSize` in natural order), sizes
 * with $bsonSize on the whole collection where the source has it, else on the same sample
 * (returned: the sampled documents near the limit).
 *
 * Amazon DocumentDB stores geospatial data as GeoJSON points only ("At this moment, Amazon
 * DocumentDB only supports points": https://docs.aws.amazon.com/documentdb/latest/developerguide/geospatial.html),
 * so a 2dsphere-indexed field holding another shape (or a legacy pair) is checked on the sample.
 */
async function checkSample(run: CompatRun, db: string, coll: string, indexes: Record<string, unknown>[]): Promise<Large[]> {
  const { t, sampleSize } = run;
  const ns = `${db}.${coll}`;
  const geoFields = t.flavor === 'documentdb'
    ? indexes.flatMap((ix) => Object.entries((ix.key ?? {}) as Record<string, unknown>).filter(([, type]) => type === '2dsphere').map(([f]) => f))
    : [];
  const badGeo: string[] = [];
  const names = refusedFieldNames(t);
  const checkNames = names !== 'none';
  const sampledLarge: Large[] = [];
  const bad: { _id: unknown; fields: string[] }[] = [];
  if (checkNames || !run.useBsonSize || geoFields.length) {
    const cursor = run.p.source.db(db).collection(coll).find({}, { limit: sampleSize, batchSize: 100 });
    for await (const doc of cursor) {
      run.documentsRead++;
      if (checkNames && bad.length < 3) {
        const fields = dotDollarFields(doc, { topLevelDollarOnly: names === 'top-level-dollar' });
        if (fields.length) bad.push({ _id: doc._id, fields });
      }
      for (const f of geoFields) {
        const v = valueAt(doc, f);
        if (v !== undefined && v !== null && !isGeoJsonPoint(v) && badGeo.length < 3) badGeo.push(`_id ${JSON.stringify(doc._id)} (${f}: ${geoShape(v)})`);
      }
      if (!run.useBsonSize) {
        const size = BSON.calculateObjectSize(doc);
        if (size >= run.nearLimit && sampledLarge.length < 5) sampledLarge.push({ _id: doc._id, size });
      }
    }
  }
  if (bad.length) {
    run.add(
      ns,
      'field names with $ or .',
      `${run.targetName} refuses ${names === 'top-level-dollar' ? 'top-level field names that start with $' : 'field names that start with $ or contain a dot'}; among the first ${sampleSize} documents: ${bad
        .map((b) => `_id ${JSON.stringify(b._id)} (${b.fields.join(', ')})`)
        .join('; ')}${t.flavor === 'ferretdb' ? ` (${FERRETDB_NOTE})` : ''}`,
      `Rename those fields on the source (e.g. an update with $setField/$unsetField, or in the application), or leave the collection out (${excludeFlag(ns)}), then rerun.${t.flavor === 'mongodb' ? ' Or migrate into MongoDB 5.0 or later, which stores them.' : ''}`,
    );
  }
  if (badGeo.length) {
    run.add(
      ns,
      '2dsphere data other than points',
      `${run.targetName} stores geospatial data as GeoJSON points only (https://docs.aws.amazon.com/documentdb/latest/developerguide/geospatial.html); among the first ${sampleSize} documents: ${badGeo.join('; ')}`,
      'Convert those values to {type: "Point", coordinates: [lng, lat]} on the source, or drop the 2dsphere index / leave the collection out (--exclude), then rerun.',
    );
  }
  return sampledLarge;
}

/** The collection's documents near or over the limit: $bsonSize while it is usable and in budget, else the sample's. */
async function largeDocuments(run: CompatRun, db: string, info: Document, sampledLarge: Large[]): Promise<Large[]> {
  const large = sampledLarge;
  if (run.useBsonSize && Date.now() >= run.scanDeadline) {
    run.sizes = 'sample';
    run.useBsonSize = false; // the budget is spent: the collections still to come are measured on their sample
  }
  if (!run.useBsonSize || (info as { type?: string }).type === 'timeseries') return large;
  const coll = String(info.name);
  const found = await largeDocumentsBySize(run.p.source, { db, coll }, run.nearLimit, 5, Math.min(BSON_SIZE_SCAN_MS, Math.max(1000, run.scanDeadline - Date.now())));
  if (Array.isArray(found)) return found;
  // The source refused $bsonSize (a server without it: then for the collections still to
  // come as well), or the scan ran out of time: measure the sample instead.
  run.sizes = 'sample';
  if (found === 'refused') run.useBsonSize = false;
  for await (const doc of run.p.source.db(db).collection(coll).find({}, { limit: run.sampleSize, batchSize: 100 })) {
    run.documentsRead++;
    const size = BSON.calculateObjectSize(doc);
    if (size >= run.nearLimit && large.length < 5) large.push({ _id: doc._id, size });
  }
  return large;
}

function addSizeItems(run: CompatRun, ns: string, large: Large[]): void {
  const { limit } = run;
  const over = large.filter((d) => d.size > limit);
  const near = large.filter((d) => d.size <= limit);
  const show = (l: Large[]) => l.map((d) => `_id ${JSON.stringify(d._id)} (${d.size} bytes)`).join(', ');
  if (over.length) {
    run.add(ns, 'documents over the size limit', `${run.targetName} stores documents of at most ${limit} bytes; larger: ${show(over)}`, `Split or trim those documents on the source (GridFS for large files), or leave the collection out (${excludeFlag(ns)}), then rerun.`);
  }
  if (near.length) {
    run.add(
      ns,
      'documents near the size limit',
      `within ${NEAR_LIMIT_MARGIN} bytes of the ${limit}-byte limit: ${show(near)}; a change event carrying one (update lookups) can exceed 16 MiB on sources that cannot split events`,
      'Nothing to do before starting; if capture fails with BSONObjectTooLarge, trim those documents on the source.',
      false,
    );
  }
}

/**
 * Views: Amazon DocumentDB has them only from its 8.0 API on
 * (https://docs.aws.amazon.com/documentdb/latest/developerguide/views.html); FerretDB v1 answers
 * `create` with viewOn with NotImplemented (238, observed on .tools/bin/ferretdb).
 */
async function checkViews(run: CompatRun): Promise<void> {
  const { t } = run;
  const noViews = (t.flavor === 'documentdb' && run.major < 8) || t.flavor === 'ferretdb';
  if (!noViews) return;
  for (const v of await listSelectedViews(run.p.source, run.p.rules)) {
    run.add(v.source, 'view', `${run.targetName} has no views${t.flavor === 'ferretdb' ? ` (${FERRETDB_NOTE})` : ' (they come with its 8.0 API)'}`, `Leave it out (${excludeFlag(v.source)}) and rebuild it on the target as a query or a collection.`);
  }
}

/**
 * What FerretDB v1 refuses (observed with the project's .tools/bin/ferretdb, SQLite backend; its
 * compatibility page: https://docs.ferretdb.io/migration/compatibility/, indexes:
 * https://docs.ferretdb.io/indexes/): `create` with collation or timeseries (238 NotImplemented),
 * indexes of type 2d, 2dsphere, hashed and text (27), and the index options
 * partialFilterExpression, expireAfterSeconds, hidden and collation (238).
 */
export function ferretDbRefusalItems(options: Record<string, unknown>, indexes: Record<string, unknown>[]): { item: string; problem: string; remedy: string }[] {
  const out: { item: string; problem: string; remedy: string }[] = [];
  if (options.collation !== undefined) {
    out.push({ item: 'collection collation', problem: `FerretDB does not implement collation (${FERRETDB_NOTE})`, remedy: 'Leave the collection out with --exclude, or copy it on the source into one without a collation, then rerun.' });
  }
  for (const ix of indexes) {
    const name = String(ix.name ?? '?');
    const drop = `Drop index ${name} on the source or leave the collection out with --exclude, then rerun.`;
    for (const [, type] of Object.entries((ix.key ?? {}) as Record<string, unknown>)) {
      if (typeof type === 'string') out.push({ item: `${type} index ${name}`, problem: `FerretDB has no ${type} indexes (${FERRETDB_NOTE})`, remedy: drop });
    }
    for (const k of ['partialFilterExpression', 'expireAfterSeconds', 'hidden', 'collation'] as const) {
      if (ix[k] !== undefined && ix[k] !== false) out.push({ item: `index ${name} with ${k}`, problem: `FerretDB does not implement the index option ${k} (${FERRETDB_NOTE})`, remedy: `Recreate index ${name} on the source without ${k}, or drop it, then rerun.` });
    }
  }
  return out;
}

/**
 * Collection options an older MongoDB target does not have yet: clustered collections from 5.3
 * (https://www.mongodb.com/docs/manual/core/clustered-collections/), changeStreamPreAndPostImages
 * from 6.0 (https://www.mongodb.com/docs/manual/reference/command/create/). (Time series: above.)
 */
export function olderMongoDbRefusals(version: string, options: Record<string, unknown>): { item: string; problem: string; remedy: string }[] {
  const [maj = 0, min = 0] = version.split('.').map((x) => Number.parseInt(x, 10));
  const atLeast = (a: number, b: number) => maj > a || (maj === a && min >= b);
  const out: { item: string; problem: string; remedy: string }[] = [];
  if (options.clusteredIndex !== undefined && !atLeast(5, 3)) {
    out.push({ item: 'clustered collection', problem: `MongoDB ${version} has no clustered collections (new in 5.3)`, remedy: 'Migrate into MongoDB 5.3 or later, or copy the collection on the source into an ordinary one (or --exclude it), then rerun.' });
  }
  if (options.changeStreamPreAndPostImages !== undefined && options.changeStreamPreAndPostImages !== false && !atLeast(6, 0)) {
    out.push({
      item: 'collection option changeStreamPreAndPostImages',
      problem: `MongoDB ${version} does not have changeStreamPreAndPostImages (new in 6.0)`,
      remedy: 'Turn it off on the source (collMod with changeStreamPreAndPostImages: {enabled: false}), or migrate into MongoDB 6.0 or later, then rerun.',
    });
  }
  return out;
}

/** The report as text: one block per item, then what was sampled. */
export function formatCompatReport(r: CompatReport): string {
  const lines: string[] = [];
  const blocking = r.items.filter((i) => i.blocking);
  lines.push(`target: ${r.target.flavor} ${r.target.version}`);
  if (!r.items.length) lines.push('compatible: nothing in the selection is refused by the target');
  else lines.push(`${blocking.length} incompatibilit${blocking.length === 1 ? 'y' : 'ies'}${r.items.length > blocking.length ? `, ${r.items.length - blocking.length} warning(s)` : ''}:`);
  const width = Math.min(40, Math.max(9, ...r.items.map((i) => i.namespace.length)));
  for (const i of r.items) {
    lines.push(`  ${i.blocking ? '✗' : '!'} ${i.namespace.padEnd(width)}  ${i.item}`);
    lines.push(`      problem: ${i.problem}`);
    lines.push(`      remedy:  ${i.remedy}`);
  }
  if (r.loadOnly.length) lines.push(`load-only (copied once, not kept in sync): ${r.loadOnly.join(', ')}`);
  const s = r.sampling;
  lines.push(
    `examined ${s.collections} collection(s): field names on the first ${s.documentsPerCollection} documents of each (${s.documentsRead} read), sizes ${s.sizes === 'bsonSize' ? 'with $bsonSize on every document' : s.sizes === 'sample' ? 'on the same sample' : 'not checked'}`,
  );
  return lines.join('\n');
}
