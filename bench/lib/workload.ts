/**
 * Synthetic documents and operation mixes of the benchmarks.
 *  - `small`: ~200-byte BSON documents, `medium`: ~2 KiB, `kib`: ~1 KiB (the in-process target);
 *  - a backlog is written with bulk writes; the `mixed` profile is 60% inserts, 30% updates
 *    (a `$set` of two fields and an `$inc`), 10% deletes of earlier documents.
 */
import { randomBytes } from 'node:crypto';
import { BSON, Double, Int32, type AnyBulkWriteOperation, type Collection, type Document } from 'mongodb';

type AnyDoc = { _id: number } & Document;

export type DocSize = 'small' | 'kib' | 'medium';
export const DOC_BYTES: Record<DocSize, number> = { small: 200, kib: 1024, medium: 2048 };

const WORDS = 'alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu'.split(' ');

import { prng } from '../../test/support/prng.js';

export { prng };

/** A long string of random words; `text` takes slices of it. */
const WORD_POOL = (() => {
  const r = prng(42);
  let s = '';
  while (s.length < 256 * 1024) s += WORDS[Math.floor(r() * WORDS.length)] + ' ';
  return s;
})();

function text(rand: () => number, chars: number): string {
  if (chars <= 0) return '';
  const at = Math.floor(rand() * (WORD_POOL.length - chars - 1));
  return WORD_POOL.slice(at, at + chars);
}

/**
 * Free text of `chars` characters: half words from a small vocabulary, half random base64, so
 * that documents compress about as well as typical application data (≈ 2×) rather than the
 * unrealistic 10×+ of repeated words.
 */
export function description(rand: () => number, chars: number): string {
  const words = text(rand, Math.floor(chars / 2));
  return words + noise(chars - words.length);
}

/** Random base64 characters, never repeated (consumed from freshly generated chunks). */
let noisePool = '';
let noiseAt = 0;
function noise(chars: number): string {
  if (noiseAt + chars > noisePool.length) {
    noisePool = randomBytes(Math.max(768 * 1024, chars)).toString('base64');
    noiseAt = 0;
  }
  const s = noisePool.slice(noiseAt, noiseAt + chars);
  noiseAt += chars;
  return s;
}

/** A product-like document of about `bytes` BSON bytes (exact when `bytes` ≥ ~150). */
export function makeDoc(id: number, bytes: number, rand: () => number, extra: Document = {}): Document {
  const doc: Document = {
    _id: id,
    sku: `SKU-${id.toString(36).padStart(8, '0')}`,
    name: text(rand, 24),
    price: new Double(Math.round(rand() * 100000) / 100),
    stock: new Int32(Math.floor(rand() * 1000)),
    tags: [WORDS[id % WORDS.length], WORDS[(id * 7) % WORDS.length]],
    updatedAt: new Date(1_700_000_000_000 + id),
    ...extra,
    desc: '',
  };
  const base = BSON.calculateObjectSize(doc);
  doc.desc = description(rand, Math.max(0, bytes - base));
  return doc;
}

export interface OpMix {
  insert: number;
  update: number;
  delete: number;
}
export const MIXES: Record<string, OpMix> = {
  inserts: { insert: 1, update: 0, delete: 0 },
  mixed: { insert: 0.6, update: 0.3, delete: 0.1 },
};

/**
 * Writes `count` operations into `coll` with ordered bulk writes of `batch` ops: returns the
 * operation counts. Document ids start at `firstId`; updates and deletes pick live documents.
 */
export async function writeBacklog(
  coll: Collection<AnyDoc>,
  opts: { count: number; bytes: number; mix: OpMix; seed?: number; firstId?: number; batch?: number; onBatch?: (done: number) => void },
): Promise<{ inserts: number; updates: number; deletes: number }> {
  const rand = prng(opts.seed ?? 1);
  const live: number[] = [];
  let nextId = opts.firstId ?? 0;
  const counts = { inserts: 0, updates: 0, deletes: 0 };
  const batch = opts.batch ?? 1000;
  let ops: AnyBulkWriteOperation<AnyDoc>[] = [];
  for (let i = 0; i < opts.count; i++) {
    const x = rand();
    if (live.length < 10 || x < opts.mix.insert) {
      const id = nextId++;
      ops.push({ insertOne: { document: makeDoc(id, opts.bytes, rand) as AnyDoc } });
      live.push(id);
      counts.inserts++;
    } else if (x < opts.mix.insert + opts.mix.update) {
      const id = live[Math.floor(rand() * live.length)];
      ops.push({ updateOne: { filter: { _id: id }, update: { $set: { name: text(rand, 24), updatedAt: new Date() }, $inc: { stock: new Int32(1) } } } });
      counts.updates++;
    } else {
      const k = Math.floor(rand() * live.length);
      const id = live[k];
      live[k] = live[live.length - 1];
      live.pop();
      ops.push({ deleteOne: { filter: { _id: id } } });
      counts.deletes++;
    }
    if (ops.length >= batch) {
      await coll.bulkWrite(ops, { ordered: true });
      ops = [];
      opts.onBatch?.(i + 1);
    }
  }
  if (ops.length > 0) await coll.bulkWrite(ops, { ordered: true });
  return counts;
}
