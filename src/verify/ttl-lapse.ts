/**
 * Which documents the cutover's verification may set aside because the SOURCE's TTL monitor expired
 * them after the barrier — and the proof that makes that sound.
 *
 * The situation: at the cutover, user writes on the source are stopped and every change made before
 * the barrier is applied on the target; capture and apply then stop. The source's TTL monitor does
 * not stop: TTL deletes are not user writes (the monitor is a background thread of the server,
 * https://www.mongodb.com/docs/manual/core/index-ttl/#delete-operations). So while verify compares,
 * the source can lose documents the target (whose TTL is held, src/db/ttl-hold.ts) still holds.
 *
 * THE PROOF. A document present on one side only is "expired by TTL" (counted apart, not a
 * mismatch) only when ALL of these hold:
 *  1. every change the source made before the barrier is applied on the target, and user writes on
 *     the source stopped before the barrier (the cutover protocol: the caller passes this option only
 *     from the cutover, after every shard applied the barrier). Hence the target copy of a document
 *     is the source's last version of it, and after the barrier the source can only have lost
 *     documents through its TTL monitor: no user write, no user delete is left.
 *  2. the copy we hold (the target's for a document missing on the source; the source's for one
 *     missing on the target) has, for one of the source's TTL indexes as they are now — single field,
 *     numeric expireAfterSeconds, no partialFilterExpression (a partial TTL index expires only the
 *     documents its filter matches, https://www.mongodb.com/docs/manual/core/index-ttl/#partial-indexes,
 *     which we do not evaluate, so it proves nothing) — a date (or an array holding dates: the
 *     earliest counts) at the indexed field with date + expireAfterSeconds <= the source's clock
 *     ("the document expires when the number of seconds in expireAfterSeconds has passed since the
 *     indexed field value", https://www.mongodb.com/docs/manual/core/index-ttl/#expiration-of-data).
 *     The source's clock is `hello.localTime` ("the local server time in UTC",
 *     https://www.mongodb.com/docs/manual/reference/command/hello/#mongodb-data-hello.localTime),
 *     read AFTER the document was seen missing: a document the monitor deleted lapsed at or before
 *     the monitor's clock at deletion, which is <= any later reading. (A reading cached from earlier
 *     only makes the test stricter; the check reads the clock again before it gives up.) A source that reports no
 *     localTime proves nothing (the document stays a mismatch).
 * Then the document is absent from the source's final state by the source's own TTL, and nothing
 * else can explain the difference. Anything short of this stays missing/extra and fails the cutover.
 *
 * A document missing on the source (the usual case) is still on the target when the verification
 * ends: the TTL index restored at the cutover deletes it there (by the target's clock, at its next
 * TTL pass), so the migrator does not delete it itself. A document missing on the target (the
 * target expired it while its TTL could not be held, e.g. a target that refused the collMod) is
 * still on the source, which deletes it by its TTL.
 */
import { BSON, type Document, type MongoClient } from 'mongodb';
import { ttlSeconds } from '../db/ttl-hold.js';

export interface TtlRule {
  /** The indexed field's path (dotted path split). */
  path: string[];
  expireAfterSeconds: number;
}

/** The TTL rules of a collection's index specs (listIndexes) that can prove a lapse (see above). */
export function ttlRules(specs: readonly Document[]): TtlRule[] {
  const out: TtlRule[] = [];
  for (const s of specs) {
    const seconds = ttlSeconds(s.expireAfterSeconds);
    const fields = s.key && typeof s.key === 'object' ? Object.keys(s.key as Document) : [];
    if (seconds === undefined || seconds < 0 || fields.length !== 1 || s.partialFilterExpression !== undefined) continue;
    out.push({ path: fields[0]!.split('.'), expireAfterSeconds: seconds });
  }
  return out;
}

function valuesAt(v: unknown, path: readonly string[]): unknown[] {
  if (path.length === 0) return [v];
  if (Array.isArray(v)) return v.flatMap((x) => valuesAt(x, path));
  if (v && typeof v === 'object' && !(v instanceof Date)) return valuesAt((v as Document)[path[0]!], path.slice(1));
  return [];
}

/** When the document lapses under the rules (ms since epoch), or undefined when no rule applies. */
export function lapsesAt(doc: Document, rules: readonly TtlRule[]): number | undefined {
  let at: number | undefined;
  for (const r of rules) {
    const dates = valuesAt(doc, r.path)
      .flatMap((v) => (Array.isArray(v) ? v : [v]))
      .filter((v): v is Date => v instanceof Date && !Number.isNaN(v.getTime()));
    if (dates.length === 0) continue;
    const t = Math.min(...dates.map((d) => d.getTime())) + r.expireAfterSeconds * 1000;
    if (at === undefined || t < at) at = t;
  }
  return at;
}

/** The source's clock (hello.localTime; see above), or undefined when it reports none. */
export async function sourceClock(source: MongoClient): Promise<Date | undefined> {
  const reply = await source
    .db('admin')
    .command({ hello: 1 })
    .catch(() => source.db('admin').command({ isMaster: 1 })); // servers before hello (DocumentDB 4.0)
  return reply.localTime instanceof Date ? reply.localTime : undefined;
}

/**
 * A check "did the source's TTL expire this document?" for one collection: condition 2 of the proof
 * (the caller vouches for condition 1). The clock is read again only when a document's lapse time is
 * past the last reading, so a collection costs one `hello` per document that is not (yet) proven.
 */
export function lapseCheck(rules: readonly TtlRule[], clock: () => Promise<Date | undefined>): (raw: Buffer) => Promise<boolean> {
  let now: number | undefined;
  return async (raw) => {
    if (rules.length === 0) return false;
    const at = lapsesAt(BSON.deserialize(raw), rules);
    if (at === undefined) return false;
    if (now !== undefined && at <= now) return true;
    now = (await clock())?.getTime();
    return now !== undefined && at <= now;
  };
}
