import type { Document, MongoClient } from 'mongodb';

type AnyDoc = Document & { _id: number | string };

/** A steady mixed workload on bar.products / bar.orders until stopped (ids continue across calls via `from`). */
export function startWorkload(client: MongoClient, opts: { from?: number; pauseMs?: number; maxIterations?: number } = {}) {
  let running = true;
  let i = opts.from ?? 0;
  let ops = 0;
  const done = (async () => {
    while (running && i - (opts.from ?? 0) < (opts.maxIterations ?? Infinity)) {
      const p = client.db('bar').collection<AnyDoc>('products');
      const id = 100_000 + i;
      await p.insertOne({ _id: id, name: `new ${i}`, price: i % 50, tags: ['a', 'b'] });
      await p.updateOne({ _id: i % 2000 }, { $set: { price: i, updatedAt: new Date() }, $unset: { legacy: '' } });
      if (i % 5 === 0) await p.deleteOne({ _id: 1000 + (i % 1000) });
      if (i % 7 === 0) await p.replaceOne({ _id: id }, { name: `new ${i}`, replaced: true, n: i });
      if (i % 11 === 0) await client.db('bar').collection<AnyDoc>('orders').insertOne({ _id: `o${i}`, total: i * 1.5 });
      ops += 4;
      i++;
      if (opts.pauseMs) await new Promise((r) => setTimeout(r, opts.pauseMs));
    }
  })();
  return {
    /** Stops; resolves with the number of operations and the next iteration number. */
    stop: async () => {
      running = false;
      await done;
      return { ops, next: i };
    },
    get iterations() {
      return i;
    },
  };
}
