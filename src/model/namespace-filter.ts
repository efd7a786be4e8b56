/**
 * Namespace selection and mapping, shared by capture (change stream `$match` + client-side
 * check), apply (source → target namespace) and the initial load (mongodump/mongorestore args).
 *
 * Patterns: `<db>.<collection>`, split at the FIRST dot (database names cannot contain dots,
 * collection names can). Either part may use `*` = any run of characters: `bar.*`,
 * `bar.products`, `*.logs`, `shop_*.orders`; a bare `<db>` means `<db>.*`. Patterns are matched
 * against SOURCE names. An empty include list means "everything".
 *
 * Maps: `SRC_DB:DST_DB` (database rename) or `srcdb.coll:dstdb.coll` (one collection; takes
 * precedence over a database map of its source database). No wildcards.
 *
 * Invariants enforced here:
 *  - system databases (admin, local, config), `system.*` collections and the migrator's own state
 *    database are never included, whatever the patterns say, and never a map target;
 *  - the mapping is injective: no two included source namespaces map to one target namespace.
 *    Config-time checks reject duplicate sources and two maps onto one target; a source whose
 *    unmapped (identity) name is the target of a map is "shadowed" and excluded (with `--map
 *    bar:bar_new`, a source database named `bar_new` is not copied onto itself); any remaining
 *    clash is raised by {@link NamespaceRules.target} as a {@link NamespaceMappingError}.
 */
import type { Document } from 'mongodb';
import { DEFAULT_STATE_DB, SYSTEM_DATABASES } from './constants.js';
import { DATA_OPS, DDL_OPS, type ChangeEnvelope, type CollectionNamespace, type Namespace } from './change-envelope.js';


/** Invalid include/exclude pattern or map specification (a configuration error). */
export class NamespaceConfigError extends Error {
  override name = 'NamespaceConfigError';
}

/** Two source namespaces would land on one target namespace. */
export class NamespaceMappingError extends Error {
  override name = 'NamespaceMappingError';
}

const PATTERN_HELP = 'expected <db>, <db>.* or <db>.<collection> where either part may use * (e.g. bar.*, bar.products, *.logs)';
// MongoDB (Linux) forbids these in database names; we also forbid them in db patterns.
const DB_FORBIDDEN = /[/\\. "$\0]/;

export interface NamespacePattern {
  readonly text: string;
  readonly db: string;
  readonly coll: string;
  readonly dbRe: RegExp;
  readonly collRe: RegExp;
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function globSource(glob: string): string {
  return `^${glob.split('*').map(escapeRegex).join('.*')}$`;
}

function checkDbName(db: string, what: string, allowWildcard: boolean): string | undefined {
  if (db.length === 0) return `${what} is empty`;
  if (DB_FORBIDDEN.test(db)) return `${what} '${db}' contains a character not allowed in database names (/\\. "$ or NUL)`;
  if (!allowWildcard && db.includes('*')) return `${what} '${db}' must not contain *`;
  if (Buffer.byteLength(db) >= 64) return `${what} '${db}' is 64 bytes or longer`;
  return undefined;
}

function checkCollName(coll: string, what: string, allowWildcard: boolean): string | undefined {
  if (coll.length === 0) return `${what} is empty`;
  if (coll.includes('\0') || coll.includes('$')) return `${what} '${coll}' contains $ or NUL`;
  if (!allowWildcard && coll.includes('*')) return `${what} '${coll}' must not contain *`;
  if (coll.startsWith('system.')) return `${what} '${coll}' names a system collection (never migrated)`;
  return undefined;
}

/** Parses and validates one include/exclude pattern; throws {@link NamespaceConfigError}. */
export function parseNamespacePattern(text: string): NamespacePattern {
  const fail = (why: string): never => {
    throw new NamespaceConfigError(`invalid namespace pattern '${text}': ${why}; ${PATTERN_HELP}`);
  };
  if (typeof text !== 'string' || text.trim() !== text || text.length === 0) fail('empty or surrounded by spaces');
  const dot = text.indexOf('.');
  const db = dot < 0 ? text : text.slice(0, dot);
  const coll = dot < 0 ? '*' : text.slice(dot + 1);
  const bad = checkDbName(db, 'database part', true) ?? checkCollName(coll, 'collection part', true);
  if (bad) fail(bad);
  if (SYSTEM_DATABASES.includes(db)) fail(`'${db}' is a system database (never migrated)`);
  return { text, db, coll, dbRe: new RegExp(globSource(db)), collRe: new RegExp(globSource(coll)) };
}

export type NamespaceMap =
  | { kind: 'db'; from: string; to: string }
  | { kind: 'coll'; from: CollectionNamespace; to: CollectionNamespace };

/** Parses `SRC_DB:DST_DB` or `srcdb.coll:dstdb.coll`; throws {@link NamespaceConfigError}. */
export function parseNamespaceMap(text: string, stateDb = DEFAULT_STATE_DB): NamespaceMap {
  const fail = (why: string): never => {
    throw new NamespaceConfigError(
      `invalid namespace map '${text}': ${why}; expected SRC_DB:DST_DB or srcdb.coll:dstdb.coll`,
    );
  };
  const parts = typeof text === 'string' ? text.split(':') : [];
  if (parts.length !== 2) fail('exactly one ":" expected');
  const [from, to] = parts as [string, string];
  const fromDot = from.indexOf('.');
  const toDot = to.indexOf('.');
  if ((fromDot < 0) !== (toDot < 0)) fail('both sides must be databases, or both collections');
  const checkTargetDb = (db: string) => {
    if (SYSTEM_DATABASES.includes(db)) fail(`'${db}' is a system database`);
    if (db === stateDb) fail(`'${db}' is the migrator's state database`);
  };
  if (fromDot < 0) {
    const bad = checkDbName(from, 'source database', false) ?? checkDbName(to, 'target database', false);
    if (bad) fail(bad);
    checkTargetDb(from);
    checkTargetDb(to);
    return { kind: 'db', from, to };
  }
  const src = { db: from.slice(0, fromDot), coll: from.slice(fromDot + 1) };
  const dst = { db: to.slice(0, toDot), coll: to.slice(toDot + 1) };
  const bad =
    checkDbName(src.db, 'source database', false) ??
    checkCollName(src.coll, 'source collection', false) ??
    checkDbName(dst.db, 'target database', false) ??
    checkCollName(dst.coll, 'target collection', false);
  if (bad) fail(bad);
  checkTargetDb(src.db);
  checkTargetDb(dst.db);
  return { kind: 'coll', from: src, to: dst };
}

export interface NamespaceRulesOptions {
  include?: readonly string[];
  exclude?: readonly string[];
  /** `SRC:DST` / `src.coll:dst.coll` strings, or `{from, to}` as the config schema produces. */
  map?: readonly (string | { from: string; to: string })[];
  /** The migrator's state database (never migrated). Default `migrator_state`. */
  stateDb?: string;
}

const nsKey = (ns: CollectionNamespace) => `${ns.db}.${ns.coll}`;

/** mongo-tools pattern syntax: `*` is a wildcard, literal `*` and `\` are backslash-escaped. */
function toolsLiteral(s: string): string {
  return s.replace(/[\\*]/g, '\\$&');
}

export class NamespaceRules {
  readonly stateDb: string;
  readonly includePatterns: readonly NamespacePattern[];
  readonly excludePatterns: readonly NamespacePattern[];
  readonly maps: readonly NamespaceMap[];
  private readonly dbMap = new Map<string, string>();
  private readonly dbMapInverse = new Map<string, string>();
  private readonly collMap = new Map<string, CollectionNamespace>();
  private readonly collMapInverse = new Map<string, CollectionNamespace>();

  constructor(options: NamespaceRulesOptions = {}) {
    this.stateDb = options.stateDb ?? DEFAULT_STATE_DB;
    const stateBad = checkDbName(this.stateDb, 'state database', false);
    if (stateBad) throw new NamespaceConfigError(stateBad);
    this.includePatterns = (options.include ?? []).map(parseNamespacePattern);
    this.excludePatterns = (options.exclude ?? []).map(parseNamespacePattern);
    for (const p of this.includePatterns) {
      if (!p.db.includes('*') && p.db === this.stateDb) {
        throw new NamespaceConfigError(`include pattern '${p.text}' names the migrator's state database`);
      }
    }
    this.maps = (options.map ?? []).map((m) =>
      parseNamespaceMap(typeof m === 'string' ? m : `${m.from}:${m.to}`, this.stateDb),
    );
    for (const m of this.maps) {
      if (m.kind === 'db') {
        if (this.dbMap.has(m.from)) throw new NamespaceConfigError(`database '${m.from}' is mapped twice: give one --map per source database`);
        if (this.dbMapInverse.has(m.to)) {
          throw new NamespaceConfigError(
            `databases '${this.dbMapInverse.get(m.to)}' and '${m.from}' are both mapped to '${m.to}': map each to its own target database`,
          );
        }
        this.dbMap.set(m.from, m.to);
        this.dbMapInverse.set(m.to, m.from);
      } else {
        const from = nsKey(m.from);
        const to = nsKey(m.to);
        if (this.collMap.has(from)) throw new NamespaceConfigError(`collection '${from}' is mapped twice: give one --map per source collection`);
        if (this.collMapInverse.has(to)) {
          throw new NamespaceConfigError(
            `collections '${nsKey(this.collMapInverse.get(to)!)}' and '${from}' are both mapped to '${to}': map each to its own target collection`,
          );
        }
        this.collMap.set(from, m.to);
        this.collMapInverse.set(to, m.from);
      }
    }
  }

  /** System database, `system.*` collection, or the state database: never read nor written. */
  isProtected(ns: Namespace): boolean {
    return (
      SYSTEM_DATABASES.includes(ns.db) ||
      ns.db === this.stateDb ||
      (ns.coll !== undefined && ns.coll.startsWith('system.'))
    );
  }

  /** A source namespace whose identity image is taken by a map (see module comment). */
  private isShadowed(ns: CollectionNamespace): boolean {
    if (this.collMap.has(nsKey(ns)) || this.dbMap.has(ns.db)) return false;
    return this.dbMapInverse.has(ns.db) || this.collMapInverse.has(nsKey(ns));
  }

  /** Is this source collection migrated? */
  includes(ns: CollectionNamespace): boolean {
    if (this.isProtected(ns) || this.isShadowed(ns)) return false;
    const matches = (p: NamespacePattern) => p.dbRe.test(ns.db) && p.collRe.test(ns.coll);
    if (this.includePatterns.length > 0 && !this.includePatterns.some(matches)) return false;
    return !this.excludePatterns.some(matches);
  }

  /** Could some collection of this source database be migrated? (for dropDatabase events) */
  includesDatabase(db: string): boolean {
    if (this.isProtected({ db })) return false;
    if (this.includePatterns.length > 0 && !this.includePatterns.some((p) => p.dbRe.test(db))) return false;
    return !this.excludePatterns.some((p) => p.coll === '*' && p.dbRe.test(db));
  }

  /** Target database of a source database (database map or identity). */
  targetDb(db: string): string {
    return this.dbMap.get(db) ?? db;
  }

  /** Target namespace of an included source collection. */
  target(ns: CollectionNamespace): CollectionNamespace {
    const mapped = this.collMap.get(nsKey(ns));
    if (mapped) return { ...mapped };
    const t = { db: this.targetDb(ns.db), coll: ns.coll };
    const claimedBy = this.collMapInverse.get(nsKey(t));
    if (claimedBy && nsKey(claimedBy) !== nsKey(ns)) {
      throw new NamespaceMappingError(
        `'${nsKey(ns)}' and '${nsKey(claimedBy)}' both map to '${nsKey(t)}'; add a map for one of them or exclude it`,
      );
    }
    return t;
  }

  /** The included source collection that maps to this target collection, if any. */
  sourceOf(target: CollectionNamespace): CollectionNamespace | undefined {
    const viaColl = this.collMapInverse.get(nsKey(target));
    let source: CollectionNamespace | undefined;
    if (viaColl) {
      source = viaColl;
    } else {
      const db = this.dbMapInverse.get(target.db) ?? (this.dbMap.has(target.db) ? undefined : target.db);
      if (db === undefined) return undefined;
      source = { db, coll: target.coll };
      if (this.collMap.has(nsKey(source))) return undefined; // that source goes elsewhere
    }
    return this.includes(source) ? { ...source } : undefined;
  }

  /** Client-side check of one envelope (capture after the server-side `$match`, apply). */
  acceptsEnvelope(e: ChangeEnvelope): boolean {
    switch (e.op) {
      case 'barrier':
        return true;
      case 'dropDatabase':
        return this.includesDatabase(e.ns.db);
      case 'rename':
        return (
          (e.ns.coll !== undefined && this.includes({ db: e.ns.db, coll: e.ns.coll })) ||
          (e.to !== undefined && this.includes(e.to))
        );
      default:
        return e.ns.coll !== undefined && this.includes({ db: e.ns.db, coll: e.ns.coll });
    }
  }

  /**
   * The `$match` stage for the change stream pipeline. A superset of what {@link includes}
   * accepts (exclusions, system collections and shadowing are checked client-side with
   * {@link acceptsEnvelope}): the server filter must never lose an event we need. Renames are
   * matched on either side, dropDatabase on the database. Literal parts use equality, `*` is
   * omitted, partial globs use `$regex`. Other operation types (invalidate, sharding events) pass.
   */
  changeStreamMatch(): Document {
    const protectedDbs = { $nin: [...SYSTEM_DATABASES, this.stateDb] };
    const cond = (glob: string): unknown =>
      glob.includes('*') ? { $regex: globSource(glob) } : glob;
    const patterns = this.includePatterns;
    if (patterns.length === 0 || patterns.some((p) => p.db === '*' && p.coll === '*')) {
      return { $match: { 'ns.db': protectedDbs } };
    }
    const alternatives: Document[] = [];
    for (const p of patterns) {
      const nsCond: Document = {};
      const toCond: Document = { operationType: 'rename' };
      if (p.db !== '*') {
        nsCond['ns.db'] = cond(p.db);
        toCond['to.db'] = cond(p.db);
      }
      if (p.coll !== '*') {
        nsCond['ns.coll'] = cond(p.coll);
        toCond['to.coll'] = cond(p.coll);
        alternatives.push({ operationType: 'dropDatabase', ...(p.db !== '*' ? { 'ns.db': cond(p.db) } : {}) });
      }
      alternatives.push(nsCond, toCond);
    }
    // Events without ns (invalidate) and expanded events not replayed (shardCollection, …: capture
    // logs them) must reach capture too. Schema events (create, createIndexes, dropIndexes, modify)
    // have ns.db/ns.coll like data events and are matched by the alternatives above.
    alternatives.push({ operationType: { $nin: [...DATA_OPS, ...DDL_OPS] } });
    return { $match: { $and: [{ 'ns.db': protectedDbs }, { $or: alternatives }] } };
  }

  /** True when a pattern means the same thing in mongo-tools' whole-namespace matching. */
  private static exactForTools(p: NamespacePattern): boolean {
    // With a literal database part, `^db\.` pins the database (database names have no dots).
    // A wildcard database part could also swallow dots of the collection name in mongo-tools.
    return !p.db.includes('*') || (p.db === '*' && p.coll === '*');
  }

  private static toolsPattern(p: NamespacePattern): string {
    const lit = (glob: string) => glob.split('*').map(toolsLiteral).join('*');
    return `${lit(p.db)}.${lit(p.coll)}`;
  }

  /**
   * Narrowing arguments for `mongodump`. mongodump (mongo-tools 100.x) has no `--nsInclude` /
   * `--nsExclude`: it can only be narrowed to one database (`--db`) or one collection
   * (`--collection`). So this returns `--db=X` when every include pattern names the same literal
   * database (plus `--collection=Y` for a single literal namespace) and `[]` otherwise (dump
   * everything). The exact selection is done by {@link mongorestoreArgs} on the way in.
   */
  mongodumpArgs(): string[] {
    const dbs = new Set(this.includePatterns.map((p) => p.db));
    if (dbs.size !== 1) return [];
    const [db] = [...dbs] as [string];
    if (db.includes('*')) return [];
    const args = [`--db=${db}`];
    const only = this.includePatterns[0]!;
    if (this.includePatterns.length === 1 && !only.coll.includes('*')) args.push(`--collection=${only.coll}`);
    return args;
  }

  /**
   * Arguments for `mongorestore`: the selection (`--nsInclude=…`/`--nsExclude=…`, matched by
   * mongo-tools against the SOURCE names in the archive) and the renames (`--nsFrom=…`/`--nsTo=…`).
   *
   * mongo-tools patterns match the whole `db.coll` string and their `*` also matches dots, so a
   * pattern with a wildcard database part and a non-`*` collection part (`*.logs` also matches
   * collection `b.logs` of database `a`) cannot be passed through exactly. Then, or whenever
   * `sourceNamespaces` (the source's collections) is given, every included collection is listed
   * explicitly. Collections created after the listing are brought by the change stream.
   * In pattern mode, system collections are excluded with `*.system.*`, which would also skip a
   * collection whose name merely contains `.system.`; list the namespaces to avoid that.
   *
   * Renames: when several `--nsFrom` patterns match, mongorestore uses the LAST one (checked with
   * mongo-tools 100.x), so database maps come first and collection maps after them.
   */
  mongorestoreArgs(options: { sourceNamespaces?: readonly CollectionNamespace[] } = {}): string[] {
    const all = [...this.includePatterns, ...this.excludePatterns];
    const args: string[] = [];
    if (options.sourceNamespaces || !all.every((p) => NamespaceRules.exactForTools(p))) {
      if (!options.sourceNamespaces) {
        const bad = all.filter((p) => !NamespaceRules.exactForTools(p)).map((p) => p.text);
        throw new NamespaceConfigError(
          `pattern(s) ${bad.join(', ')} cannot be passed to mongorestore exactly; list the source namespaces`,
        );
      }
      const included = options.sourceNamespaces.filter((ns) => this.includes(ns));
      if (included.length === 0) throw new NamespaceConfigError('no source collection matches the namespace filters');
      for (const ns of included) args.push(`--nsInclude=${toolsLiteral(ns.db)}.${toolsLiteral(ns.coll)}`);
    } else {
      const everything = this.includePatterns.length === 0 || this.includePatterns.some((p) => p.db === '*' && p.coll === '*');
      if (!everything) for (const p of this.includePatterns) args.push(`--nsInclude=${NamespaceRules.toolsPattern(p)}`);
      for (const p of this.excludePatterns) args.push(`--nsExclude=${NamespaceRules.toolsPattern(p)}`);
      for (const db of [...SYSTEM_DATABASES, this.stateDb]) args.push(`--nsExclude=${toolsLiteral(db)}.*`);
      args.push('--nsExclude=*.system.*');
      // Shadowed sources (their identity image is a map target).
      for (const [to] of this.dbMapInverse) if (!this.dbMap.has(to)) args.push(`--nsExclude=${toolsLiteral(to)}.*`);
      for (const m of this.maps) {
        if (m.kind === 'coll' && this.isShadowed(m.to)) args.push(`--nsExclude=${toolsLiteral(m.to.db)}.${toolsLiteral(m.to.coll)}`);
      }
    }
    for (const m of this.maps) {
      if (m.kind === 'db') args.push(`--nsFrom=${toolsLiteral(m.from)}.*`, `--nsTo=${toolsLiteral(m.to)}.*`);
    }
    for (const m of this.maps) {
      if (m.kind === 'coll') {
        args.push(
          `--nsFrom=${toolsLiteral(m.from.db)}.${toolsLiteral(m.from.coll)}`,
          `--nsTo=${toolsLiteral(m.to.db)}.${toolsLiteral(m.to.coll)}`,
        );
      }
    }
    return args;
  }
}
