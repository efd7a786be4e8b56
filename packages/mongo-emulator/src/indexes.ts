// Index catalog of one collection. Every index keeps its spec (returned by listIndexes exactly as
// created); unique indexes also keep a map from canonical key to the owning document's _id key,
// which is how uniqueness is enforced.
//
// Invariants: for every unique index, `entries` holds exactly the keys of the documents currently
// stored (a document may own several keys when a field is an array: multikey); callers run
// `checkWrite` for all indexes before `applyWrite`, so a rejected write changes nothing.
import { canonicalKey, formatValue, isPlainObject, pathValues, toNumber, truthy, type Doc } from './bson-values.js';
import { CommandError, ErrorCodes } from './errors.js';
import { compileFilter, type Predicate } from './query.js';

export const ID_INDEX_NAME = '_id_';

export interface IndexSpec extends Doc {
  v: number;
  key: Doc;
  name: string;
}

export function defaultIndexName(key: Doc): string {
  return Object.entries(key)
    .map(([k, v]) => `${k}_${typeof v === 'string' ? v : toNumber(v)}`)
    .join('_');
}

class Index {
  readonly fields: string[][];
  readonly unique: boolean;
  readonly sparse: boolean;
  readonly partial: Predicate | undefined;
  /** canonical key -> canonical _id of the owner (unique indexes only). */
  readonly entries = new Map<string, string>();

  constructor(readonly spec: IndexSpec) {
    this.fields = Object.keys(spec.key).map((k) => k.split('.'));
    this.unique = spec.name === ID_INDEX_NAME || truthy(spec.unique);
    this.sparse = truthy(spec.sparse);
    this.partial = spec.partialFilterExpression ? compileFilter(spec.partialFilterExpression) : undefined;
  }

  /** Per-field values, one entry per array element for multikey fields; null for missing fields. */
  private fieldValues(doc: Doc): unknown[][] {
    return this.fields.map((path) => {
      const vs: unknown[] = [];
      for (const v of pathValues(doc, path)) {
        if (Array.isArray(v)) vs.push(...(v.length ? v : [undefined]));
        else vs.push(v);
      }
      return vs;
    });
  }

  /** Distinct canonical keys of `doc`, each with the first concrete value tuple producing it. */
  keys(doc: Doc | undefined): Map<string, unknown[]> {
    const out = new Map<string, unknown[]>();
    if (!doc || !this.unique) return out;
    if (this.partial && !this.partial(doc)) return out;
    const perField = this.fieldValues(doc);
    if (this.sparse && perField.every((vs) => vs.length === 0)) return out;
    let tuples: unknown[][] = [[]];
    for (const vs of perField) {
      const options = vs.length ? vs : [null];
      tuples = tuples.flatMap((t) => options.map((v) => [...t, v ?? null]));
    }
    for (const t of tuples) {
      const k = canonicalKey(t);
      if (!out.has(k)) out.set(k, t);
    }
    return out;
  }

  duplicateError(ns: string, tuple: unknown[]): CommandError {
    const names = Object.keys(this.spec.key);
    const keyValue: Doc = {};
    names.forEach((n, i) => (keyValue[n] = tuple[i]));
    const shown = names.map((n, i) => `${n}: ${formatValue(tuple[i])}`).join(', ');
    return new CommandError(
      ErrorCodes.DuplicateKey,
      `E11000 duplicate key error collection: ${ns} index: ${this.spec.name} dup key: { ${shown} }`,
      { keyPattern: this.spec.key, keyValue },
    );
  }
}

export class IndexSet {
  private readonly indexes = new Map<string, Index>();

  constructor(private readonly ns: () => string) {
    this.indexes.set(ID_INDEX_NAME, new Index({ v: 2, key: { _id: 1 }, name: ID_INDEX_NAME }));
  }

  specs(): IndexSpec[] {
    return [...this.indexes.values()].map((i) => i.spec);
  }

  get size(): number {
    return this.indexes.size;
  }

  has(name: string): boolean {
    return this.indexes.has(name);
  }

  findByKey(key: Doc): IndexSpec | undefined {
    const k = canonicalKey(key);
    return [...this.indexes.values()].find((i) => canonicalKey(i.spec.key) === k)?.spec;
  }

  /**
   * Throws the server's E11000 error if storing `next` as the document with canonical _id `idKey`
   * violates a unique index (keys owned by `idKey` itself are not conflicts).
   */
  checkWrite(next: Doc, idKey: string): void {
    for (const index of this.indexes.values()) {
      if (!index.unique) continue;
      for (const [k, tuple] of index.keys(next)) {
        const owner = index.entries.get(k);
        if (owner !== undefined && owner !== idKey) throw index.duplicateError(this.ns(), tuple);
      }
    }
  }

  applyWrite(prev: Doc | undefined, next: Doc | undefined, idKey: string): void {
    for (const index of this.indexes.values()) {
      if (!index.unique) continue;
      for (const k of index.keys(prev).keys()) if (index.entries.get(k) === idKey) index.entries.delete(k);
      for (const k of index.keys(next).keys()) index.entries.set(k, idKey);
    }
  }

  /** Adds an index over the existing documents; throws E11000 if they violate a new unique index. */
  add(spec: IndexSpec, docs: Iterable<[string, Doc]>): void {
    const index = new Index(spec);
    if (index.unique) {
      for (const [idKey, doc] of docs) {
        for (const [k, tuple] of index.keys(doc)) {
          const owner = index.entries.get(k);
          if (owner !== undefined && owner !== idKey) throw index.duplicateError(this.ns(), tuple);
          index.entries.set(k, idKey);
        }
      }
    }
    this.indexes.set(spec.name, index);
  }

  remove(name: string): void {
    this.indexes.delete(name);
  }

  clearEntries(): void {
    for (const index of this.indexes.values()) index.entries.clear();
  }
}

/** Validates and normalizes a createIndexes spec: {v: 2, key, name, ...options} in that order. */
export function normalizeIndexSpec(raw: unknown): IndexSpec {
  if (!isPlainObject(raw) || !isPlainObject(raw.key) || Object.keys(raw.key).length === 0) {
    throw new CommandError(ErrorCodes.FailedToParse, "Index spec must have a non-empty 'key' document");
  }
  const name = typeof raw.name === 'string' ? raw.name : defaultIndexName(raw.key);
  const rest: Doc = {};
  for (const [k, v] of Object.entries(raw)) {
    if (k === 'v' || k === 'key' || k === 'name' || k === 'ns' || k === 'background') continue;
    rest[k] = v;
  }
  return { v: 2, key: raw.key, name, ...rest };
}
