/**
 * The chaos suite's source data and write workload: several collections in two databases (one of
 * them renamed by the migration), ids of several BSON types, documents carrying most BSON types,
 * and a seeded stream of inserts, $set/$unset updates, replaces and deletes that keeps going while
 * the source restarts (a failed write is counted and retried later with other ids: the test
 * compares target with source, not with a model, so an ambiguous write is harmless).
 */
import {
  Binary,
  BSONRegExp,
  Code,
  Decimal128,
  Double,
  Int32,
  Long,
  MaxKey,
  MinKey,
  ObjectId,
  Timestamp,
  type Document,
  type MongoClient,
} from 'mongodb';

export const COLLECTIONS = ['shop.items', 'shop.orders', 'crm.contacts', 'crm.events'] as const;

type Id = number | string | ObjectId | Long;

function idFor(ns: string, n: number): Id {
  switch (ns) {
    case 'shop.items':
      return n;
    case 'shop.orders':
      return `order-${n}`;
    case 'crm.contacts':
      return new ObjectId(n.toString(16).padStart(24, '0'));
    default:
      return Long.fromNumber(5e12 + n);
  }
}

function docFor(n: number, rand: () => number): Document {
  return {
    n: new Int32(n),
    price: new Decimal128(`${n}.${Math.floor(rand() * 100)}`),
    ratio: new Double(rand()),
    big: Long.fromNumber(n * 1e9),
    at: new Date(1_700_000_000_000 + n),
    ts: new Timestamp({ t: 1_700_000_000 + n, i: 1 }),
    bin: new Binary(Buffer.from([n & 255, 1, 2, 3])),
    re: new BSONRegExp('^a.*', 'i'),
    code: new Code('function () { return 1; }'),
    lo: new MinKey(),
    hi: new MaxKey(),
    nested: { a: { b: [1, { c: 'x' }], d: null } },
    tags: ['a', 'b', 'c'].slice(0, 1 + (n % 3)),
    legacy: true,
    pad: 'p'.repeat(200 + Math.floor(rand() * 600)),
  };
}

/** Inserts `perCollection` documents in each collection. */
export async function seedSource(client: MongoClient, perCollection: number, rand: () => number): Promise<void> {
  for (const ns of COLLECTIONS) {
    const [db, coll] = ns.split('.') as [string, string];
    for (let start = 0; start < perCollection; start += 1000) {
      const docs = Array.from({ length: Math.min(1000, perCollection - start) }, (_, k) => ({ _id: idFor(ns, start + k), ...docFor(start + k, rand) }));
      await client.db(db).collection(coll).insertMany(docs as never[]);
    }
  }
}

export interface WorkloadCounts {
  insert: number;
  set: number;
  unset: number;
  replace: number;
  delete: number;
  failed: number;
}

/** Runs the seeded workload until `stop()`; ids above `perCollection` are new documents. */
export function startChaosWorkload(client: MongoClient, perCollection: number, rand: () => number, pauseMs = 3) {
  const counts: WorkloadCounts = { insert: 0, set: 0, unset: 0, replace: 0, delete: 0, failed: 0 };
  const next = new Map<string, number>(COLLECTIONS.map((ns) => [ns, perCollection]));
  let running = true;
  const done = (async () => {
    while (running) {
      const ns = COLLECTIONS[Math.floor(rand() * COLLECTIONS.length)]!;
      const [db, name] = ns.split('.') as [string, string];
      const coll = client.db(db).collection(name);
      const top = next.get(ns)!;
      const existing = { _id: idFor(ns, Math.floor(rand() * top)) } as Document;
      const r = rand();
      const k = Math.floor(rand() * 1e6);
      try {
        if (r < 0.3) {
          await coll.insertOne({ _id: idFor(ns, top), ...docFor(top, rand) } as never);
          next.set(ns, top + 1);
          counts.insert++;
        } else if (r < 0.55) {
          await coll.updateOne(existing, { $set: { n: new Int32(k), 'nested.a.d': k, at: new Date() }, $inc: { hits: 1 } });
          counts.set++;
        } else if (r < 0.7) {
          await coll.updateOne(existing, { $unset: { legacy: '', 'nested.a.b': '' } });
          counts.unset++;
        } else if (r < 0.85) {
          await coll.replaceOne(existing, { replaced: k, price: new Decimal128(`${k}.25`), tags: ['r'] });
          counts.replace++;
        } else {
          await coll.deleteOne(existing);
          counts.delete++;
        }
      } catch {
        counts.failed++;
        await new Promise((res) => setTimeout(res, 200));
      }
      if (pauseMs) await new Promise((res) => setTimeout(res, pauseMs));
    }
  })();
  return {
    counts,
    stop: async () => {
      running = false;
      await done;
      return counts;
    },
  };
}
