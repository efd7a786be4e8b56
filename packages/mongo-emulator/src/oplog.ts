// local.oplog.rs of the mongodb profiles: a read-only view of the change history (the emulator's
// oplog, change-history.ts) in the oplog's shape, for what clients read of it — the first and the
// last entry by $natural order (the oplog window, as rs.printReplicationInfo() computes it) and
// its size. Documented:
// - every replica set member holds the oplog in the capped collection local.oplog.rs, whose
//   entries carry the operation's timestamp `ts`, in write order
//   (https://www.mongodb.com/docs/manual/core/replica-set-oplog/,
//   https://www.mongodb.com/docs/manual/reference/local-database/);
// - `sort({$natural: 1 | -1})` returns documents in (reverse) natural order, i.e. insertion order
//   for a capped collection (https://www.mongodb.com/docs/manual/reference/operator/meta/natural/);
// - the window is the time between the first and the last entry
//   (https://www.mongodb.com/docs/manual/reference/method/rs.printReplicationInfo/).
// Not served: on the documentdb profiles (Amazon DocumentDB gives no oplog access:
// https://docs.aws.amazon.com/documentdb/latest/developerguide/change_streams.html — change
// streams only), nor through a mongos (sharded mode; each shard has its own oplog, and reading
// `local` through mongos is undocumented: the less convenient answer, nothing). There the
// collection reads as an empty one, as before.
// Entry fields (op i/u/d/c/n, ns, ui, o, o2, ts, t, v, wall) follow the server's oplog_entry.idl;
// only `ts`, `op`, `ns` and `wall` are meant to be read by tests. Inserts into it are not refused
// here (undocumented for clients; nobody does it). A fresh replica set's oplog is never empty (its
// initiation writes a no-op entry): the view starts with one at the server's start.
import { Long, Timestamp } from 'bson';
import type { Doc } from './bson-values.js';
import type { ChangeEntry } from './change-history.js';
import type { CommandContext } from './command-context.js';
import { isDocumentDB } from './documentdb.js';
import { compileFilter, parseSort, sortDocs } from './query.js';

export function isOplog(ctx: CommandContext, collName: string): boolean {
  return ctx.db === 'local' && collName === 'oplog.rs' && !isDocumentDB(ctx.server.profile) && !ctx.server.sharding;
}

const TERM = Long.fromNumber(1);
const VERSION = Long.fromNumber(2);

function entry(e: ChangeEntry): Doc {
  const base = { ts: e.ts, t: TERM, v: VERSION, wall: e.wall, ...(e.uuid ? { ui: e.uuid } : {}) };
  const ns = e.coll !== undefined ? `${e.db}.${e.coll}` : e.db;
  switch (e.op) {
    case 'insert':
      return { op: 'i', ns, ...base, o: e.fullDocument ?? {}, o2: e.documentKey ?? {} };
    case 'update':
      return { op: 'u', ns, ...base, o: { $v: 2, diff: e.updateDescription ?? {} }, o2: e.documentKey ?? {} };
    case 'replace':
      return { op: 'u', ns, ...base, o: e.fullDocument ?? {}, o2: e.documentKey ?? {} };
    case 'delete':
      return { op: 'd', ns, ...base, o: e.documentKey ?? {} };
    default:
      // DDL: a command entry on the database's $cmd namespace.
      return { op: 'c', ns: `${e.db}.$cmd`, ...base, o: { [e.op]: e.coll ?? 1, ...(e.operationDescription ?? {}) } };
  }
}

/** The oplog's entries in natural (write) order: the initiation no-op, then the retained history. */
export function oplogEntries(ctx: CommandContext): Doc[] {
  const history = ctx.server.engine.history.retained();
  const started = ctx.server.startedAt;
  const out: Doc[] = [];
  // The initiation entry, unless the history already dropped entries (a capped oplog drops its oldest first).
  if (!ctx.server.engine.history.lostThrough) {
    const t = Math.floor(started.getTime() / 1000);
    const first = history[0]?.ts;
    const ts = first && first.t <= t ? new Timestamp({ t: first.t, i: 0 }) : new Timestamp({ t, i: 0 });
    out.push({ op: 'n', ns: '', o: { msg: 'initiating set' }, ts, t: TERM, v: VERSION, wall: new Date(ts.t * 1000) });
  }
  for (const e of history) out.push(entry(e));
  return out;
}

/** `sort` of a find on the oplog: only {$natural: ±1} (or none) changes the order here. */
export function naturalDirection(sort: unknown): 1 | -1 {
  if (sort && typeof sort === 'object' && '$natural' in sort && Number((sort as Doc).$natural) === -1) return -1;
  return 1;
}

/** A find on the oplog: its filter, then $natural order (or another sort), then `limit`. */
export function findInOplog(ctx: CommandContext, opts: { filter: unknown; sort: unknown; limit?: number }): Doc[] {
  const predicate = compileFilter(opts.filter, {});
  let docs = oplogEntries(ctx).filter(predicate);
  const spec = parseSort(opts.sort);
  if (spec) docs = sortDocs(docs, spec);
  else if (naturalDirection(opts.sort) === -1) docs.reverse();
  return opts.limit ? docs.slice(0, opts.limit) : docs;
}
