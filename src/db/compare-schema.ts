import { Decimal128, Double, Int32, Long, type Document, type MongoClient } from 'mongodb';
import { documentDbRefusals } from './documentdb-compat.js';
import { detectFlavor, documentDbEngineVersion, type ServerInfo } from './server-info.js';

/**
 * Schema comparison for `migrator verify`: index specs, collection options and views of each
 * migrated namespace, next to the document comparison (compare-collection.ts).
 *
 * What the servers report is normalised before comparing, so two servers holding the same schema
 * compare equal even when they describe it differently:
 *  - index specs (listIndexes, https://www.mongodb.com/docs/manual/reference/command/listIndexes/):
 *    `v` (index version, chosen by the server), `ns` (reported by servers before 4.4), `background`
 *    (ignored since 4.2, https://www.mongodb.com/docs/manual/reference/method/db.collection.createIndex/),
 *    `textIndexVersion` / `2dsphereIndexVersion` (server-chosen format versions) are dropped;
 *    `unique` / `sparse` / `hidden` set to false are the same as absent; numbers compare by value
 *    (Int32 1, Double 1.0 and Long 1 are the same key direction or TTL);
 *  - collation documents: the server fills in every field of a collation
 *    (https://www.mongodb.com/docs/manual/reference/collation/#collation-document); `version` is the
 *    ICU version of that server, not a choice of the user, so it is dropped;
 *  - collection options (listCollections `options`,
 *    https://www.mongodb.com/docs/manual/reference/command/listCollections/): `validationLevel:
 *    'strict'` and `validationAction: 'error'` are the defaults
 *    (https://www.mongodb.com/docs/manual/core/schema-validation/specify-validation-level/) and the
 *    same as absent; `changeStreamPreAndPostImages: {enabled: false}` is the same as absent.
 *
 * Indexes are matched by what they are, not by name: first by key pattern (field order matters) +
 * collation + partial filter (MongoDB allows several indexes on one key pattern that differ in
 * those, https://www.mongodb.com/docs/manual/core/index-partial/#restrictions), then what is left by
 * name or key pattern alone (reported as "different", with the properties that differ), the rest
 * as missing on the target or extra on it.
 */

export type SchemaKind = 'indexes' | 'options' | 'views';
export const SCHEMA_KINDS: readonly SchemaKind[] = ['indexes', 'options', 'views'];

export interface SchemaDifference {
  kind: SchemaKind;
  /** Source namespace (`db.coll`), '' when the item exists only on the target. */
  source: string;
  /** Target namespace the source maps to. */
  target: string;
  /** Index name, collection option name (`(collection)` for the collection itself) or view name. */
  name: string;
  difference: 'missing' | 'extra' | 'different';
  /** The normalised spec on each side (null where absent). */
  sourceSpec: Document | null;
  targetSpec: Document | null;
  /** One line for people: what differs, and why the target may be unable to hold it. */
  detail: string;
  /** The user excluded this kind with --ignore-schema: listed, but not a mismatch. */
  ignored: boolean;
}

export interface SchemaReport {
  /** No difference outside the ignored kinds. */
  match: boolean;
  ignored: SchemaKind[];
  differences: SchemaDifference[];
}

/** What the target is, for the notes on what it cannot hold. */
export interface TargetKind {
  flavor: ServerInfo['flavor'];
  version: string;
}

// ------------------------------------------------------------------------------------------------
// Normalisation

function numberOf(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof Int32 || v instanceof Double) return v.valueOf();
  if (v instanceof Long) return v.toNumber();
  if (v instanceof Decimal128) return Number(v.toString());
  return undefined;
}

/** Plain JSON-able value: numbers by value; `sortKeys` orders object keys (where order has no meaning). */
export function plainValue(v: unknown, sortKeys = false): unknown {
  const n = numberOf(v);
  if (n !== undefined) return n;
  if (Array.isArray(v)) return v.map((x) => plainValue(x, sortKeys));
  if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    const keys = Object.keys(v);
    if (sortKeys) keys.sort();
    const out: Document = {};
    for (const k of keys) out[k] = plainValue((v as Document)[k], sortKeys);
    return out;
  }
  if (v instanceof Date) return { $date: v.toISOString() };
  if (v && typeof v === 'object' && 'toJSON' in v && typeof (v as { toJSON: unknown }).toJSON === 'function') {
    return (v as { toJSON(): unknown }).toJSON();
  }
  return v;
}

function normalizeCollation(c: unknown): unknown {
  if (!c || typeof c !== 'object') return c;
  const { version: _version, ...rest } = c as Document;
  return plainValue(rest, true);
}

const INDEX_SERVER_FIELDS = new Set(['v', 'ns', 'background', 'textIndexVersion', '2dsphereIndexVersion']);
const FALSE_IS_ABSENT = new Set(['unique', 'sparse', 'hidden']);

/** An index spec as compared: server-added fields dropped, defaults folded, numbers by value. */
export function normalizeIndexSpec(spec: Document): Document {
  const out: Document = {};
  for (const k of Object.keys(spec).sort()) {
    if (INDEX_SERVER_FIELDS.has(k)) continue;
    const v = spec[k];
    if (FALSE_IS_ABSENT.has(k) && (v === false || v === 0)) continue;
    if (FALSE_IS_ABSENT.has(k) && v === true) out[k] = true;
    else if (k === 'key') out[k] = plainValue(v); // field order is the index's order
    else if (k === 'collation') out[k] = normalizeCollation(v);
    else out[k] = plainValue(v, true);
  }
  return out;
}

/** Collection options as compared (views' viewOn/pipeline are compared by {@link compareViews}). */
export function normalizeCollectionOptions(options: Document): Document {
  const out: Document = {};
  for (const k of Object.keys(options).sort()) {
    const v = options[k];
    if (k === 'validationLevel' && v === 'strict') continue;
    if (k === 'validationAction' && v === 'error') continue;
    if (k === 'changeStreamPreAndPostImages' && (v as Document | undefined)?.enabled === false) continue;
    if (k === 'collation') out[k] = normalizeCollation(v);
    else if (k === 'pipeline' || k === 'validator') out[k] = plainValue(v); // stage / operator order matters
    else out[k] = plainValue(v, true);
  }
  return out;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
const show = (v: unknown) => (v === undefined ? 'absent' : JSON.stringify(v));

/** `unique: source true, target absent; expireAfterSeconds: source 3600, target 60` */
function propertyDiff(a: Document, b: Document): string {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  return keys
    .filter((k) => !same(a[k], b[k]))
    .map((k) => `${k}: source ${show(a[k])}, target ${show(b[k])}`)
    .join('; ');
}

// ------------------------------------------------------------------------------------------------
// What the target cannot hold

/**
 * Why the target may lack a source item: Amazon DocumentDB's unsupported index types, index
 * options and collection options (documentdb-compat.ts, from AWS's supported-API list); FerretDB
 * supports a subset of index properties (https://docs.ferretdb.io/indexes/). Empty when no reason
 * is known.
 */
export function targetLimitNote(target: TargetKind | undefined, options: Document, indexes: Document[]): string {
  if (!target) return '';
  if (target.flavor === 'documentdb') {
    const refused = documentDbRefusals(target.version, options, indexes);
    return refused.length ? ` (Amazon DocumentDB ${target.version} cannot hold ${refused.join(', ')})` : '';
  }
  if (target.flavor === 'ferretdb') return ' (the target is FerretDB, which supports only some index and collection options: https://docs.ferretdb.io/indexes/)';
  return '';
}

/** The target's flavor and version (buildInfo, getEngineVersion: see server-info.ts). */
export async function targetKind(client: MongoClient): Promise<TargetKind | undefined> {
  try {
    const buildInfo = await client.db('admin').command({ buildInfo: 1 });
    const isFerret = Boolean(buildInfo.ferretdb || buildInfo.ferretdbFeatures);
    const engine = isFerret ? undefined : await documentDbEngineVersion(client);
    return { flavor: detectFlavor('', buildInfo, engine), version: String(buildInfo.version ?? '') };
  } catch {
    return undefined; // notes are a courtesy; the comparison itself does not need them
  }
}

// ------------------------------------------------------------------------------------------------
// Comparison

type Emit = (d: Omit<SchemaDifference, 'ignored'>) => void;

const identity = (n: Document) => JSON.stringify([n.key, n.collation ?? null, n.partialFilterExpression ?? null]);

/** Whether an index key pattern begins with every field of `prefix`, in order, with the same values. */
function startsWithKey(key: unknown, prefix: Document): boolean {
  if (!key || typeof key !== 'object') return false;
  const k = Object.entries(key as Document);
  const p = Object.entries(prefix);
  return p.length > 0 && p.length <= k.length && p.every(([f, v], i) => k[i]![0] === f && same(k[i]![1], v));
}

/** Compares the index specs of one source collection with those of its target collection. */
export function compareIndexes(
  ns: { source: string; target: string },
  sourceSpecs: Document[],
  targetSpecs: Document[],
  emit: Emit,
  targetInfo?: TargetKind,
  targetShardKey?: Document,
): void {
  const src = sourceSpecs.map((raw) => ({ raw, n: normalizeIndexSpec(raw) }));
  const dst = targetSpecs.map((raw) => ({ raw, n: normalizeIndexSpec(raw) }));
  const pending: typeof src = [];
  for (const s of src) {
    const i = dst.findIndex((t) => identity(t.n) === identity(s.n));
    if (i < 0) {
      pending.push(s);
      continue;
    }
    const [t] = dst.splice(i, 1);
    if (!same(s.n, t!.n)) {
      emit({
        kind: 'indexes', ...ns, name: String(s.n.name), difference: 'different', sourceSpec: s.n, targetSpec: t!.n,
        detail: `index ${String(s.n.name)} ${JSON.stringify(s.n.key)} differs: ${propertyDiff(s.n, t!.n)}${targetLimitNote(targetInfo, {}, [s.raw])}`,
      });
    }
  }
  for (const s of pending) {
    // Same name or key pattern, but another collation / partial filter: the same index, changed.
    const i = dst.findIndex((t) => t.n.name === s.n.name || same(t.n.key, s.n.key));
    const note = targetLimitNote(targetInfo, {}, [s.raw]);
    if (i >= 0) {
      const [t] = dst.splice(i, 1);
      emit({
        kind: 'indexes', ...ns, name: String(s.n.name), difference: 'different', sourceSpec: s.n, targetSpec: t!.n,
        detail: `index ${String(s.n.name)} ${JSON.stringify(s.n.key)} differs: ${propertyDiff(s.n, t!.n)}${note}`,
      });
    } else {
      emit({
        kind: 'indexes', ...ns, name: String(s.n.name), difference: 'missing', sourceSpec: s.n, targetSpec: null,
        detail: `index ${String(s.n.name)} ${JSON.stringify(s.n)} is missing on the target${note}`,
      });
    }
  }
  for (const t of dst) {
    // A sharded target collection has an index on its shard key that the source need not have:
    // sharding requires one ("Shard Key Indexes",
    // https://www.mongodb.com/docs/manual/core/sharding-shard-key/#shard-key-indexes). Not a difference.
    if (targetShardKey && startsWithKey(t.n.key, targetShardKey)) continue;
    emit({
      kind: 'indexes', ...ns, name: String(t.n.name), difference: 'extra', sourceSpec: null, targetSpec: t.n,
      detail: `index ${String(t.n.name)} ${JSON.stringify(t.n)} exists only on the target`,
    });
  }
}

/** Compares collection options (viewOn/pipeline excluded: views are compared on their own). */
export function compareOptions(
  ns: { source: string; target: string },
  sourceOptions: Document,
  targetOptions: Document,
  emit: Emit,
  targetInfo?: TargetKind,
): void {
  const a = normalizeCollectionOptions(sourceOptions);
  const b = normalizeCollectionOptions(targetOptions);
  for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
    if (same(a[k], b[k])) continue;
    const note = a[k] !== undefined ? targetLimitNote(targetInfo, { [k]: sourceOptions[k] }, []) : '';
    emit({
      kind: 'options', ...ns, name: k,
      difference: a[k] === undefined ? 'extra' : b[k] === undefined ? 'missing' : 'different',
      sourceSpec: a[k] === undefined ? null : { [k]: a[k] },
      targetSpec: b[k] === undefined ? null : { [k]: b[k] },
      detail: `collection option ${k}: source ${show(a[k])}, target ${show(b[k])}${note}`,
    });
  }
}

/**
 * A view's pipeline with the collections its stages read renamed (`--map db.coll:db.coll2`): the
 * `from` of $lookup and $graphLookup, $unionWith's collection, also inside the sub-pipelines of
 * $lookup, $unionWith and $facet (https://www.mongodb.com/docs/manual/reference/operator/aggregation/lookup/,
 * …/unionWith/, …/graphLookup/, …/facet/). `rename` answers the target name of a collection of
 * the view's database. Other stages are kept as they are.
 */
export function mapViewPipeline(pipeline: unknown, rename: (coll: string) => string): unknown {
  if (!Array.isArray(pipeline)) return pipeline;
  const sub = (p: unknown) => mapViewPipeline(p, rename);
  return pipeline.map((stage: unknown) => {
    if (stage === null || typeof stage !== 'object' || Array.isArray(stage)) return stage;
    const [op, arg] = Object.entries(stage as Document)[0] ?? [];
    if (op === undefined || arg === null || typeof arg !== 'object') {
      return op === '$unionWith' && typeof arg === 'string' ? { $unionWith: rename(arg) } : stage;
    }
    const a = arg as Document;
    if (op === '$lookup' || op === '$graphLookup') {
      const out: Document = { ...a };
      if (typeof a.from === 'string') out.from = rename(a.from);
      if (a.pipeline !== undefined) out.pipeline = sub(a.pipeline);
      return { [op]: out };
    }
    if (op === '$unionWith') {
      const out: Document = { ...a };
      if (typeof a.coll === 'string') out.coll = rename(a.coll);
      if (a.pipeline !== undefined) out.pipeline = sub(a.pipeline);
      return { $unionWith: out };
    }
    if (op === '$facet') return { $facet: Object.fromEntries(Object.entries(a).map(([k, v]) => [k, sub(v)])) };
    return stage;
  });
}

/** A view as compared: what it reads (mapped to the target's name), its pipeline and collation. */
export function normalizeView(options: Document, viewOn?: string): Document {
  const out: Document = { viewOn: viewOn ?? options.viewOn, pipeline: plainValue(options.pipeline ?? []) };
  if (options.collation !== undefined) out.collation = normalizeCollation(options.collation);
  return out;
}

export function applyIgnores(differences: Omit<SchemaDifference, 'ignored'>[], ignored: readonly SchemaKind[]): SchemaReport {
  const all = differences.map((d) => ({ ...d, ignored: ignored.includes(d.kind) }));
  return { match: all.every((d) => d.ignored), ignored: [...ignored], differences: all };
}
