// Query evaluation over typed documents: filters (through mingo on converted views), BSON-aware
// sort, and projection (typed for plain inclusion/exclusion, mingo for expressions).
import { Aggregator, Context, Query } from 'mingo';
import {
  bsonTypeName,
  compareValues,
  typeRank,
  deepCopy,
  isPlainObject,
  newViewContext,
  pathValues,
  restoreFromView,
  toNumber,
  toView,
  truthy,
  type Doc,
} from './bson-values.js';
import { CommandError, ErrorCodes } from './errors.js';

export type Predicate = (doc: Doc) => boolean;

export function asMingoError(err: unknown): never {
  if (err instanceof CommandError) throw err;
  const message = (err as Error).message ?? String(err);
  // The server's code for an undefined $$variable (17276, undocumented; asserted by MongoDB's
  // spec test crud/client-bulkWrite-errors.json).
  if (/^Use of undefined variable/.test(message)) throw new CommandError(17276, message);
  throw new CommandError(ErrorCodes.BadValue, message);
}

// ---------------------------------------------------------------------------------------------
// Collation (https://www.mongodb.com/docs/manual/reference/collation/): strength 1 compares base
// characters only (case and diacritics ignored), strength 2 ignores case, 3 (the default) and
// above compare like the simple binary collation here. Strings are compared through a collation
// key (locale lower case, diacritics stripped at strength 1) in filters and distinct, and with
// Intl.Collator in sorts. $regex ignores collation, as on the server. Other collation options
// (caseFirst, numericOrdering, alternate, backwards) are not modelled.

export type StringFold = (s: string) => string;

/** The collation key function of a `collation` document, or undefined for binary comparison. */
export function collationFold(collation: unknown): StringFold | undefined {
  if (!isPlainObject(collation) || typeof collation.locale !== 'string' || collation.locale === 'simple') return undefined;
  const strength = collation.strength === undefined ? 3 : toNumber(collation.strength);
  const locale = collation.locale.replace('_', '-');
  if (strength >= 3) return undefined;
  if (strength === 2) return (s) => s.toLocaleLowerCase(locale);
  return (s) => s.normalize('NFD').replace(/[\u0300-\u036f]/g, '').toLocaleLowerCase(locale);
}

/** Operators whose string arguments are not compared values (not folded under a collation). */
const UNFOLDED = new Set(['$regex', '$options', '$type', '$bsonTypeMatch', '$exists', '$expr', '$where', '$jsonSchema', '$text', '$mod', '$size']);

function foldFilter(v: unknown, fold: StringFold): unknown {
  if (typeof v === 'string') return fold(v);
  if (Array.isArray(v)) return v.map((x) => foldFilter(x, fold));
  if (!isPlainObject(v)) return v;
  const out: Doc = {};
  for (const [k, x] of Object.entries(v)) out[k] = UNFOLDED.has(k) ? x : foldFilter(x, fold);
  return out;
}

/** A copy of a document with every string value folded (keys unchanged). */
export function foldDoc(v: unknown, fold: StringFold): unknown {
  if (typeof v === 'string') return fold(v);
  if (Array.isArray(v)) return v.map((x) => foldDoc(x, fold));
  if (!isPlainObject(v)) return v;
  const out: Doc = {};
  for (const [k, x] of Object.entries(v)) out[k] = foldDoc(x, fold);
  return out;
}

/**
 * The `let` option's variables, in mingo's view representation: each value is an expression
 * evaluated once against an empty document (`{$literal: '$x'}` → '$x', `{$rand: {}}` → a double),
 * as the server evaluates `let` (https://www.mongodb.com/docs/manual/reference/command/aggregate/#std-label-aggregate-let-example).
 */
export function letVariables(letOption: unknown): Doc | undefined {
  if (!isPlainObject(letOption)) return undefined;
  try {
    const out = new Aggregator([{ $addFields: { v: toView(letOption) as Doc } }], {}).run([{}])[0] as Doc | undefined;
    return isPlainObject(out?.v) ? out.v : (toView(letOption) as Doc);
  } catch (err) {
    asMingoError(err);
  }
}

export interface FilterOptions {
  /** The operation's collation. */
  collation?: unknown;
  /** `let` variables ($$name in $expr). */
  variables?: unknown;
}

// ---------------------------------------------------------------------------------------------
// $type (https://www.mongodb.com/docs/manual/reference/operator/query/type/): mingo's own only
// knows JS types, so ObjectId, Timestamp, binData, MinKey, MaxKey and JavaScript never matched. The
// query operator is renamed to $bsonTypeMatch before mingo compiles the filter, which evaluates it
// on the BSON values: aliases and numeric codes; an array field matches 'array' or when one of its
// elements matches. Numbers reach mingo as JS numbers (int and double are not told apart there):
// 'number', 'double' and 'decimal' match every number, 'int' and 'long' the integral ones, as before.

const TYPE_CODES: Record<string, string> = {
  '1': 'double', '2': 'string', '3': 'object', '4': 'array', '5': 'binData', '6': 'undefined', '7': 'objectId', '8': 'bool', '9': 'date',
  '10': 'null', '11': 'regex', '13': 'javascript', '14': 'symbol', '15': 'javascriptWithScope', '16': 'int', '17': 'timestamp', '18': 'long',
  '19': 'decimal', '-1': 'minKey', '127': 'maxKey',
};

/** Whether one (non-array) value has the `$type` alias `alias`. */
function hasBsonType(v: unknown, alias: string): boolean {
  if (v === null) return alias === 'null';
  if (typeof v === 'number') {
    if (alias === 'number' || alias === 'double' || alias === 'decimal') return true;
    return (alias === 'int' || alias === 'long') && Number.isInteger(v);
  }
  if (typeof v === 'bigint') return alias === 'number' || alias === 'long';
  if (typeof v === 'string') return alias === 'string';
  if (typeof v === 'boolean') return alias === 'bool';
  if (v instanceof Date) return alias === 'date';
  if (v instanceof RegExp) return alias === 'regex';
  switch (bsonTypeName(v)) {
    case 'ObjectId':
      return alias === 'objectId';
    case 'Timestamp':
      return alias === 'timestamp';
    case 'Binary':
    case 'UUID':
      return alias === 'binData';
    case 'MinKey':
      return alias === 'minKey';
    case 'MaxKey':
      return alias === 'maxKey';
    case 'Code':
      return alias === ((v as { scope?: unknown }).scope ? 'javascriptWithScope' : 'javascript');
    case 'BSONSymbol':
      return alias === 'symbol';
  }
  return isPlainObject(v) && alias === 'object';
}

/**
 * Range operators with a binData, document or Timestamp operand: the server orders binData by
 * length, then subtype, then bytes, documents field by field (type, name, value) and timestamps by
 * (t, i) (https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/); mingo compares
 * their string forms. Renamed like $type, evaluated with compareValues, type-bracketed (only values
 * of the operand's type class compare with it).
 */
const BSON_RANGE_OPS: Record<string, (c: number) => boolean> = {
  $lt: (c) => c < 0,
  $lte: (c) => c <= 0,
  $gt: (c) => c > 0,
  $gte: (c) => c >= 0,
};
const bsonRangeOp = (op: string) => (selector: string, value: unknown) => {
  const path = selector.split('.');
  const test = BSON_RANGE_OPS[op]!;
  const cls = typeRank(value);
  return (doc: Doc) =>
    pathValues(doc, path).some((v) => (Array.isArray(v) ? v : [v]).some((el) => typeRank(el) === cls && test(compareValues(el, value))));
};

/** Operands whose order mingo gets wrong: binData, documents (not operator objects), Timestamps. */
const needsBsonOrder = (x: unknown) =>
  ['Binary', 'UUID', 'Timestamp'].includes(bsonTypeName(x) ?? '') || (isPlainObject(x) && !isOperatorObject(x));

const typeQueryContext = Context.init({
  query: {
    $bsonOrderLt: bsonRangeOp('$lt'),
    $bsonOrderLte: bsonRangeOp('$lte'),
    $bsonOrderGt: bsonRangeOp('$gt'),
    $bsonOrderGte: bsonRangeOp('$gte'),
    $bsonTypeMatch: (selector: string, value: unknown) => {
      const aliases = (Array.isArray(value) ? value : [value]).map((t) => TYPE_CODES[String(t)] ?? String(t));
      const path = selector.split('.');
      return (doc: Doc) =>
        pathValues(doc, path).some((v) =>
          Array.isArray(v) ? aliases.includes('array') || v.some((el) => aliases.some((a) => hasBsonType(el, a))) : aliases.some((a) => hasBsonType(v, a)),
        );
    },
  },
} as never);

/** The filter with its query-position $type operators renamed (not inside $expr, whose $type is an expression). */
function renameTypeOperator(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(renameTypeOperator);
  if (!isPlainObject(v)) return v;
  const out: Doc = {};
  for (const [k, x] of Object.entries(v)) {
    if (k === '$expr' || k === '$jsonSchema' || k === '$where') out[k] = x;
    else if (k === '$type') out.$bsonTypeMatch = x;
    else if (k in BSON_RANGE_OPS && needsBsonOrder(x)) out[`$bsonOrder${k.slice(1, 2).toUpperCase()}${k.slice(2)}`] = x;
    else out[k] = renameTypeOperator(x);
  }
  return out;
}

export function compileFilter(filter: unknown, options: FilterOptions = {}): Predicate {
  if (filter === undefined || filter === null) return () => true;
  if (!isPlainObject(filter)) throw new CommandError(ErrorCodes.TypeMismatch, 'filter must be an object');
  if (Object.keys(filter).length === 0) return () => true;
  const fold = collationFold(options.collation);
  let q: Query;
  try {
    const variables = letVariables(options.variables);
    const typed = renameTypeOperator(filter);
    q = new Query(toView(fold ? foldFilter(typed, fold) : typed) as Doc, { ...(variables ? { variables } : {}), context: typeQueryContext });
  } catch (err) {
    asMingoError(err);
  }
  return (doc) => {
    try {
      return q.test(toView(fold ? foldDoc(doc, fold) : doc) as Doc);
    } catch (err) {
      asMingoError(err);
    }
  };
}

/** True when `v` is an operator object such as {$gt: 1} (as opposed to a literal sub-document). */
export function isOperatorObject(v: unknown): boolean {
  if (!isPlainObject(v)) return false;
  const keys = Object.keys(v);
  return keys.length > 0 && keys[0].startsWith('$');
}

/**
 * Literal `_id` values a filter pins the result to ({_id: v} or {_id: {$eq: v}} or {_id: {$in: [...]}}),
 * letting callers look documents up by key instead of scanning; undefined when not pinned.
 */
export function idCandidates(filter: unknown): unknown[] | undefined {
  if (!isPlainObject(filter) || !('_id' in filter)) return undefined;
  const v = filter._id;
  // {_id: /re/} is a regular-expression match, not an equality (https://www.mongodb.com/docs/manual/reference/operator/query/regex/).
  if (v instanceof RegExp || (v as { _bsontype?: string })?._bsontype === 'BSONRegExp') return undefined;
  if (!isOperatorObject(v)) return isPlainObject(v) || !Array.isArray(v) ? [v] : undefined;
  const ops = v as Doc;
  const keys = Object.keys(ops);
  if (keys.length !== 1) return undefined;
  if (keys[0] === '$eq' && !Array.isArray(ops.$eq)) return [ops.$eq];
  if (keys[0] === '$in' && Array.isArray(ops.$in) && ops.$in.every((x) => !Array.isArray(x) && !(x instanceof RegExp))) {
    return ops.$in;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Sort

export type SortSpec = [string[], number][];

export function parseSort(sort: unknown): SortSpec | undefined {
  if (!isPlainObject(sort) || Object.keys(sort).length === 0) return undefined;
  const spec: SortSpec = [];
  for (const [k, v] of Object.entries(sort)) {
    if (isPlainObject(v)) continue; // {$meta: ...}: no text scores here, keep natural order
    const dir = toNumber(v);
    if (dir !== 1 && dir !== -1) throw new CommandError(ErrorCodes.BadValue, `$sort key ordering must be 1 (for ascending) or -1 (for descending)`);
    if (k === '$natural') continue;
    spec.push([k.split('.'), dir]);
  }
  return spec.length ? spec : undefined;
}

export type Comparator = (a: unknown, b: unknown) => number;

/**
 * The comparison of a collation (https://www.mongodb.com/docs/manual/reference/collation/):
 * strings compare by ICU through Intl.Collator (MongoDB uses ICU as well) with the document's
 * locale, strength (1 base letters, 2 + diacritics, 3 + case, the default), caseLevel, caseFirst
 * and numericOrdering; other values as without collation. `{locale: 'simple'}` or none: binary
 * comparison, i.e. undefined here. Only top-level string values of sort keys use it (strings inside
 * arrays' documents and in query predicates do not: a known gap, see the emulator's README).
 */
export function collationComparator(collation: unknown): Comparator | undefined {
  if (!isPlainObject(collation)) return undefined;
  const locale = collation.locale;
  if (typeof locale !== 'string') throw new CommandError(ErrorCodes.BadValue, "collation must have a 'locale' string");
  if (locale === 'simple') return undefined;
  const strength = collation.strength === undefined ? 3 : toNumber(collation.strength);
  if (![1, 2, 3, 4, 5].includes(strength)) throw new CommandError(ErrorCodes.BadValue, 'collation strength must be an integer from 1 to 5');
  const caseLevel = collation.caseLevel === true;
  const sensitivity = strength === 1 ? (caseLevel ? 'case' : 'base') : strength === 2 ? (caseLevel ? 'variant' : 'accent') : 'variant';
  const caseFirst = collation.caseFirst === 'upper' || collation.caseFirst === 'lower' ? collation.caseFirst : 'false';
  let collator: Intl.Collator;
  try {
    collator = new Intl.Collator(locale.replace(/@.*$/, '').replace(/_/g, '-'), { sensitivity, caseFirst, numeric: collation.numericOrdering === true, usage: 'sort' });
  } catch {
    throw new CommandError(ErrorCodes.BadValue, `unsupported collation locale: ${locale}`);
  }
  return (a, b) => (typeof a === 'string' && typeof b === 'string' ? collator.compare(a, b) : compareValues(a, b));
}

/** Sort key of one field: arrays contribute their minimum (ascending) or maximum (descending) element. */
function sortKey(doc: Doc, path: string[], dir: number, compare: Comparator = compareValues): unknown {
  const values: unknown[] = [];
  for (const v of pathValues(doc, path)) {
    if (Array.isArray(v)) values.push(...(v.length ? v : [undefined]));
    else values.push(v);
  }
  if (values.length === 0) return null;
  let best = values[0];
  for (const v of values) if (compare(v, best) * dir < 0) best = v;
  return best;
}

/** Stable sort (ties keep the input order, i.e. natural order). */
export function sortDocs<T extends Doc>(docs: T[], spec: SortSpec | undefined, compare: Comparator = compareValues): T[] {
  if (!spec) return docs;
  const keyed = docs.map((doc, i) => ({ doc, i, keys: spec.map(([p, d]) => sortKey(doc, p, d, compare)) }));
  keyed.sort((a, b) => {
    for (let k = 0; k < spec.length; k++) {
      const c = compare(a.keys[k], b.keys[k]) * spec[k][1];
      if (c) return c;
    }
    return a.i - b.i;
  });
  return keyed.map((k) => k.doc);
}

// ---------------------------------------------------------------------------------------------
// Projection

interface PathTree {
  [field: string]: PathTree | true;
}

function buildTree(paths: string[]): PathTree {
  const root: PathTree = {};
  for (const p of paths) {
    const parts = p.split('.');
    let node = root;
    for (let i = 0; i < parts.length; i++) {
      const last = i === parts.length - 1;
      const existing = node[parts[i]];
      if (last) node[parts[i]] = true;
      else if (existing === true) break;
      else node = (node[parts[i]] = existing ?? {});
    }
  }
  return root;
}

function include(value: unknown, tree: PathTree): unknown {
  if (Array.isArray(value)) return value.filter((v) => isPlainObject(v) || Array.isArray(v)).map((v) => include(v, tree));
  if (!isPlainObject(value)) return undefined;
  const out: Doc = {};
  for (const [k, v] of Object.entries(value)) {
    const node = tree[k];
    if (node === undefined) continue;
    if (node === true) out[k] = v;
    else {
      const sub = include(v, node);
      if (sub !== undefined) out[k] = sub;
    }
  }
  return out;
}

function exclude(value: unknown, tree: PathTree): unknown {
  if (Array.isArray(value)) return value.map((v) => exclude(v, tree));
  if (!isPlainObject(value)) return value;
  const out: Doc = {};
  for (const [k, v] of Object.entries(value)) {
    const node = tree[k];
    if (node === true) continue;
    out[k] = node === undefined ? v : exclude(v, node);
  }
  return out;
}

export type Projector = (doc: Doc) => Doc;

function isFlag(v: unknown): boolean {
  return typeof v === 'boolean' || (v !== null && typeof v === 'object' && 'value' in v && typeof (v as { value: unknown }).value === 'number');
}

export function compileProjection(projection: unknown): Projector | undefined {
  if (!isPlainObject(projection) || Object.keys(projection).length === 0) return undefined;
  const entries = Object.entries(projection);
  if (entries.every(([, v]) => isFlag(v)) && !entries.some(([k]) => k.includes('$'))) {
    const excludeId = '_id' in projection && !truthy(projection._id);
    const others = entries.filter(([k]) => k !== '_id');
    const inclusion = others.some(([, v]) => truthy(v)) || (others.length === 0 && !excludeId);
    if (inclusion) {
      const paths = others.filter(([, v]) => truthy(v)).map(([k]) => k);
      if (others.some(([, v]) => !truthy(v))) throw new CommandError(31254, 'Cannot do exclusion on field in inclusion projection');
      if (!excludeId) paths.unshift('_id');
      const tree = buildTree(paths);
      return (doc) => {
        const out = include(doc, tree) as Doc;
        // _id leads the projected document like the server's.
        if (!excludeId && '_id' in out) return { _id: out._id, ...out };
        return out;
      };
    }
    const tree = buildTree(entries.filter(([, v]) => !truthy(v)).map(([k]) => k));
    return (doc) => exclude(doc, tree) as Doc;
  }
  // Expressions, $slice, $elemMatch, positional: delegate to mingo's $project on a view.
  let agg: Aggregator;
  try {
    agg = new Aggregator([{ $project: toView(projection) as Doc }], {});
  } catch (err) {
    asMingoError(err);
  }
  return (doc) => runViewPipeline(agg, [doc])[0];
}

/** Runs a compiled mingo pipeline over typed documents and converts the results back to BSON types. */
export function runViewPipeline(agg: Aggregator, docs: Doc[]): Doc[] {
  const ctx = newViewContext();
  const views = docs.map((d) => toView(d, ctx) as Doc);
  try {
    return agg.run(views).map((r) => restoreFromView(r, ctx) as Doc);
  } catch (err) {
    asMingoError(err);
  }
}

export function copyDoc(doc: Doc): Doc {
  return deepCopy(doc);
}
