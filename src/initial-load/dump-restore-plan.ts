import type { EndpointConfig } from '../config/schema.js';

/** One mongodump | mongorestore pipe: a source database, minus the collections not migrated. */
export interface PipeJob {
  sourceDb: string;
  targetDb: string;
  collections: string[];
  dumpArgs: string[];
  restoreArgs: string[];
  /**
   * mongodump's query (Extended JSON), handed over as --queryFile in the pipe's 0600 work folder:
   * never on the command line, where `ps` shows it and its length is bounded.
   */
  queryJson?: string;
  /** What the pipe is, for messages ("bar", "bar.items range 3/8"). */
  label?: string;
}

export interface LoadOptions {
  /** Drop each target collection before restoring it (mongorestore --drop). */
  drop: boolean;
  numParallelCollections: number;
  numInsertionWorkersPerCollection: number;
  /** Skip index builds on the target (build them later, e.g. for huge collections). */
  noIndexRestore: boolean;
  /** Compress the archive between the two tools (useful when they run on different hosts). */
  gzip: boolean;
}

export const DEFAULT_LOAD_OPTIONS: LoadOptions = {
  drop: false,
  numParallelCollections: 4,
  numInsertionWorkersPerCollection: 2,
  noIndexRestore: false,
  gzip: false,
};

/** TLS flags of the Database Tools for an endpoint (the URI itself goes in the 0600 config file). */
export function tlsArgs(e: EndpointConfig): string[] {
  const a: string[] = [];
  if (e.tls || e.tlsCAFile) a.push('--ssl');
  if (e.tlsCAFile) a.push(`--sslCAFile=${e.tlsCAFile}`);
  if (e.tlsAllowInvalidHostnames) a.push('--sslAllowInvalidHostnames');
  return a;
}

/**
 * The connection string the Database Tools get: the user's URI with the same connection settings
 * the driver gets from the flags (src/db/connect.ts clientOptions). `--no-target-retry-writes`
 * must reach mongorestore too: Amazon DocumentDB before 8.0.2 refuses retryable writes
 * (https://docs.aws.amazon.com/documentdb/latest/developerguide/retryable-writes.html), and the
 * tools' Go driver retries writes by default. TLS goes as flags (tlsArgs).
 */
export function toolUri(e: EndpointConfig): string {
  if (e.retryWrites === undefined) return e.uri;
  return setUriOption(e.uri, 'retryWrites', String(e.retryWrites));
}

/** Sets one query option of a mongodb:// URI (replacing it, case-insensitively, if present). */
export function setUriOption(uri: string, name: string, value: string): string {
  const hash = uri.indexOf('#');
  const base = hash >= 0 ? uri.slice(0, hash) : uri;
  const q = base.indexOf('?');
  const head = q >= 0 ? base.slice(0, q) : base;
  const params = q >= 0 ? base.slice(q + 1).split('&').filter((kv) => kv !== '' && kv.split('=')[0].toLowerCase() !== name.toLowerCase()) : [];
  params.push(`${name}=${encodeURIComponent(value)}`);
  // A URI without a path needs one before the options: mongodb://host/?opt (the tools' parser insists).
  const rest = head.replace(/^mongodb(\+srv)?:\/\//, '');
  const withSlash = rest.includes('/') ? head : `${head}/`;
  return `${withSlash}?${params.join('&')}`;
}

/** mongo-tools namespace pattern syntax: `*` is a wildcard; a literal `*` or `\` is backslash-escaped. */
export const toolsLiteral = (name: string) => name.replace(/[\\*]/g, '\\$&');

/**
 * Builds one pipe per source database. mongodump selects with --db and --excludeCollection (it has
 * no namespace patterns), so the selection is resolved against the actual collections first;
 * mongorestore renames with --nsFrom/--nsTo and restricts with --nsInclude.
 *
 * Collection renames (`--map db.coll:db2.coll2`, `targetOf`): mongorestore renames a namespace
 * with the --nsFrom/--nsTo pair that matches it
 * (https://www.mongodb.com/docs/database-tools/mongorestore/#std-option-mongorestore.--nsFrom).
 * So that no two pairs ever match one namespace (which one wins would be up to the tool), a
 * database with a renamed collection gets one literal pair per collection instead of `db.*`.
 */
export function planPipes(
  selected: { db: string; coll: string }[],
  allCollections: Map<string, string[]>,
  targetDb: (db: string) => string,
  opts: LoadOptions,
  targetOf: (ns: { db: string; coll: string }) => { db: string; coll: string } = (ns) => ({ db: targetDb(ns.db), coll: ns.coll }),
): PipeJob[] {
  const byDb = new Map<string, string[]>();
  for (const { db, coll } of selected) byDb.set(db, [...(byDb.get(db) ?? []), coll]);
  const jobs: PipeJob[] = [];
  for (const [db, colls] of [...byDb].sort(([a], [b]) => a.localeCompare(b))) {
    const keep = new Set(colls);
    const excluded = (allCollections.get(db) ?? []).filter((c) => !keep.has(c)).sort();
    const tdb = targetDb(db);
    const dumpArgs = ['--archive', `--db=${db}`, ...excluded.map((c) => `--excludeCollection=${c}`)];
    const restoreArgs = ['--archive', `--nsInclude=${toolsLiteral(db)}.*`];
    const targets = [...keep].sort().map((coll) => ({ coll, to: targetOf({ db, coll }) }));
    if (targets.some((t) => t.to.db !== tdb || t.to.coll !== t.coll)) {
      for (const t of targets) {
        if (t.to.db === db && t.to.coll === t.coll) continue;
        restoreArgs.push(`--nsFrom=${toolsLiteral(db)}.${toolsLiteral(t.coll)}`, `--nsTo=${toolsLiteral(t.to.db)}.${toolsLiteral(t.to.coll)}`);
      }
    } else if (tdb !== db) {
      restoreArgs.push(`--nsFrom=${toolsLiteral(db)}.*`, `--nsTo=${toolsLiteral(tdb)}.*`);
    }
    if (opts.gzip) {
      dumpArgs.push('--gzip');
      restoreArgs.push('--gzip');
    }
    if (opts.drop) restoreArgs.push('--drop');
    if (opts.noIndexRestore) restoreArgs.push('--noIndexRestore');
    restoreArgs.push(
      `--numParallelCollections=${opts.numParallelCollections}`,
      `--numInsertionWorkersPerCollection=${opts.numInsertionWorkersPerCollection}`,
    );
    dumpArgs.push(`--numParallelCollections=${opts.numParallelCollections}`);
    jobs.push({ sourceDb: db, targetDb: tdb, collections: [...keep].sort(), dumpArgs, restoreArgs });
  }
  return jobs;
}
