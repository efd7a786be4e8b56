// Value matching of MongoDB's unified test format ("Evaluating Matches",
// https://github.com/mongodb/specifications/blob/master/source/unified-test-format/unified-test-format.md#evaluating-matches):
// root-level documents may carry extra fields, nested ones may not; arrays match element by element
// with the same length; numbers compare by value across int/long/double (not Decimal128); key order
// never matters; the `$$` operators ($$exists, $$type, $$unsetOrMatches, $$matchesEntity,
// $$sessionLsid, $$lte, $$matchAsDocument, $$matchAsRoot, $$matchesHexBytes) are evaluated here.
import { EJSON, type Document } from 'bson';

export class MatchError extends Error {}

/** What the matcher needs from the entity map. */
export interface MatchContext {
  entity(name: string): unknown;
  sessionLsid(name: string): Document;
}

export function isDocument(v: unknown): v is Document {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * An actual value as a plain document when it is one in BSON terms: driver option objects in
 * command events (ReadConcern, a sort Map, …) serialize as documents.
 */
function asDocument(v: unknown): Document | undefined {
  if (isDocument(v)) return v;
  if (v instanceof Map) return Object.fromEntries(v) as Document;
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Date || bsonType(v) !== undefined || Buffer.isBuffer(v)) return undefined;
  if (typeof (v as { toJSON?: unknown }).toJSON === 'function') {
    const j = (v as { toJSON(): unknown }).toJSON();
    return isDocument(j) ? j : undefined;
  }
  return { ...(v as Document) };
}

function bsonType(v: unknown): string | undefined {
  if (v !== null && typeof v === 'object' && '_bsontype' in v) return String((v as { _bsontype: unknown })._bsontype);
  return undefined;
}

function isNumberLike(v: unknown): boolean {
  if (typeof v === 'number' || typeof v === 'bigint') return true;
  const t = bsonType(v);
  return t === 'Int32' || t === 'Double' || t === 'Long';
}

function numberOf(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  const t = bsonType(v);
  if (t === 'Long') return (v as { toNumber(): number }).toNumber();
  return Number((v as { valueOf(): unknown }).valueOf());
}

/** `$type` names an actual value can be (a JS number has lost its BSON width, so it may be several). */
export function typeNamesOf(v: unknown): string[] {
  if (v === undefined) return [];
  if (v === null) return ['null'];
  if (typeof v === 'string') return ['string'];
  if (typeof v === 'boolean') return ['bool'];
  if (typeof v === 'bigint') return ['long'];
  if (typeof v === 'number') return Number.isInteger(v) ? ['int', 'long', 'double'] : ['double'];
  if (Array.isArray(v)) return ['array'];
  if (v instanceof Date) return ['date'];
  if (v instanceof RegExp) return ['regex'];
  switch (bsonType(v)) {
    case 'Int32':
      return ['int'];
    case 'Long':
      return ['long'];
    case 'Double':
      return ['double'];
    case 'Decimal128':
      return ['decimal'];
    case 'ObjectId':
      return ['objectId'];
    case 'Binary':
      return ['binData'];
    case 'Timestamp':
      return ['timestamp'];
    case 'BSONRegExp':
      return ['regex'];
    case 'Code':
      return (v as { scope?: unknown }).scope ? ['javascriptWithScope'] : ['javascript'];
    case 'BSONSymbol':
      return ['symbol'];
    case 'MinKey':
      return ['minKey'];
    case 'MaxKey':
      return ['maxKey'];
    case 'DBRef':
      return ['object'];
  }
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return ['binData'];
  return ['object'];
}

function show(v: unknown): string {
  try {
    return EJSON.stringify(v as Document, { relaxed: true });
  } catch {
    return String(v);
  }
}

function fail(path: string, message: string): never {
  throw new MatchError(`${path || '(root)'}: ${message}`);
}

/** Equality of two non-document, non-array values (flexible numerics). */
function scalarEquals(expected: unknown, actual: unknown): boolean {
  if (isNumberLike(expected) && isNumberLike(actual)) return numberOf(expected) === numberOf(actual);
  if (expected === null || actual === null || expected === undefined || actual === undefined) return expected === actual;
  if (typeof expected !== 'object' || typeof actual !== 'object') return expected === actual;
  const te = bsonType(expected);
  const ta = bsonType(actual);
  if (expected instanceof Date && actual instanceof Date) return expected.getTime() === actual.getTime();
  if (te === 'Binary' && (ta === 'Binary' || Buffer.isBuffer(actual))) {
    const eb = Buffer.from((expected as { buffer: Uint8Array }).buffer);
    const ab = Buffer.isBuffer(actual) ? actual : Buffer.from((actual as { buffer: Uint8Array }).buffer);
    return eb.equals(ab);
  }
  if (te !== ta) return false;
  // Same BSON type: compare canonical extended JSON (ObjectId, Timestamp, Decimal128, regex, …).
  return EJSON.stringify({ v: expected }, { relaxed: false }) === EJSON.stringify({ v: actual }, { relaxed: false });
}

function isOperator(v: unknown): v is Document {
  if (!isDocument(v)) return false;
  const keys = Object.keys(v);
  return keys.length === 1 && keys[0].startsWith('$$');
}

/** Evaluates a `$$` operator against a value that exists. */
function matchOperator(op: Document, actual: unknown, path: string, root: boolean, ctx: MatchContext): void {
  const [name] = Object.keys(op);
  const arg = op[name];
  switch (name) {
    case '$$type': {
      const wanted = Array.isArray(arg) ? (arg as string[]) : [String(arg)];
      if (actual === undefined) fail(path, `expected a value of type ${wanted.join('|')}, field is missing`);
      const has = typeNamesOf(actual);
      if (!wanted.some((w) => has.includes(w) || (w === 'number' && has.some((h) => ['int', 'long', 'double', 'decimal'].includes(h))))) {
        fail(path, `expected type ${wanted.join('|')}, got ${has.join('|')} (${show(actual)})`);
      }
      return;
    }
    case '$$unsetOrMatches':
      if (actual === undefined) return;
      match(arg, actual, path, root, ctx);
      return;
    case '$$exists':
      if ((actual !== undefined) !== Boolean(arg)) fail(path, arg ? 'expected the field to exist' : `expected no field, got ${show(actual)}`);
      return;
    case '$$matchesEntity':
      match(ctx.entity(String(arg)), actual, path, root, ctx);
      return;
    case '$$sessionLsid':
      match(ctx.sessionLsid(String(arg)), actual, path, false, ctx);
      return;
    case '$$lte':
      if (!isNumberLike(actual) || numberOf(actual) > numberOf(arg)) fail(path, `expected a number <= ${show(arg)}, got ${show(actual)}`);
      return;
    case '$$matchAsDocument': {
      if (typeof actual !== 'string') fail(path, `expected an extended JSON string, got ${show(actual)}`);
      match(arg, EJSON.parse(actual, { relaxed: false }), path, false, ctx);
      return;
    }
    case '$$matchAsRoot':
      match(arg, actual, path, true, ctx);
      return;
    case '$$matchesHexBytes': {
      const hex = String(arg).toLowerCase();
      const got = Buffer.isBuffer(actual) ? actual.toString('hex') : typeof actual === 'string' ? Buffer.from(actual, 'latin1').toString('hex') : undefined;
      if (got !== hex) fail(path, `expected bytes ${hex}, got ${show(actual)}`);
      return;
    }
    default:
      throw new Error(`unsupported match operator ${name} at ${path}`);
  }
}

/**
 * Asserts `actual` matches `expected`; throws MatchError naming the first mismatching path.
 * `root`: extra fields are allowed in this document (not in its sub-documents).
 */
export function match(expected: unknown, actual: unknown, path = '', root = true, ctx: MatchContext = NO_ENTITIES): void {
  if (isOperator(expected)) {
    matchOperator(expected, actual, path, root, ctx);
    return;
  }
  if (isDocument(expected)) {
    const act = bsonType(actual) === 'DBRef' ? (actual as Document) : asDocument(actual);
    if (!act) fail(path, `expected a document ${show(expected)}, got ${show(actual)}`);
    for (const [key, value] of Object.entries(expected)) {
      const sub = path ? `${path}.${key}` : key;
      const present = Object.prototype.hasOwnProperty.call(act, key) && act[key] !== undefined;
      if (isOperator(value)) {
        const opName = Object.keys(value)[0];
        if (opName === '$$exists' || opName === '$$unsetOrMatches') {
          matchOperator(value, present ? act[key] : undefined, sub, false, ctx);
          continue;
        }
      }
      if (!present) fail(sub, `expected ${show(value)}, field is missing`);
      match(value, act[key], sub, false, ctx);
    }
    if (!root) {
      const extra = Object.keys(act).filter((k) => act[k] !== undefined && !Object.prototype.hasOwnProperty.call(expected, k));
      if (extra.length) fail(path, `unexpected field(s) ${extra.join(', ')} in ${show(act)}`);
    }
    return;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) fail(path, `expected an array ${show(expected)}, got ${show(actual)}`);
    if (actual.length !== expected.length) fail(path, `expected ${expected.length} element(s), got ${actual.length}: ${show(actual)}`);
    expected.forEach((e, i) => match(e, actual[i], `${path}[${i}]`, false, ctx));
    return;
  }
  if (!scalarEquals(expected, actual)) fail(path, `expected ${show(expected)}, got ${show(actual)}`);
}

/**
 * expectResult of an operation: a document result is root-level, and so is each document of an
 * iterated result (find, aggregate, …) but not of a `distinct` array.
 */
export function matchResult(expected: unknown, actual: unknown, operation: string, ctx: MatchContext): void {
  if (Array.isArray(expected) && operation !== 'distinct') {
    if (!Array.isArray(actual)) fail('result', `expected an array ${show(expected)}, got ${show(actual)}`);
    if (actual.length !== expected.length) fail('result', `expected ${expected.length} element(s), got ${actual.length}: ${show(actual)}`);
    expected.forEach((e, i) => match(e, actual[i], `result[${i}]`, true, ctx));
    return;
  }
  match(expected, actual, 'result', true, ctx);
}

/** Exact equality of documents up to key order and numeric width (test outcomes). */
export function matchExactly(expected: unknown, actual: unknown, path = ''): void {
  if (isDocument(expected)) {
    if (!isDocument(actual)) fail(path, `expected a document ${show(expected)}, got ${show(actual)}`);
    const ek = Object.keys(expected).sort();
    const ak = Object.keys(actual).filter((k) => actual[k] !== undefined).sort();
    if (ek.join('\0') !== ak.join('\0')) fail(path, `expected fields ${ek.join(', ')}, got ${ak.join(', ')} (${show(actual)})`);
    for (const k of ek) matchExactly(expected[k], actual[k], path ? `${path}.${k}` : k);
    return;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) fail(path, `expected ${show(expected)}, got ${show(actual)}`);
    expected.forEach((e, i) => matchExactly(e, actual[i], `${path}[${i}]`));
    return;
  }
  if (!scalarEquals(expected, actual)) fail(path, `expected ${show(expected)}, got ${show(actual)}`);
}

const NO_ENTITIES: MatchContext = {
  entity: (name) => {
    throw new Error(`no entity ${name}`);
  },
  sessionLsid: (name) => {
    throw new Error(`no session ${name}`);
  },
};
