/**
 * Synthetic change events, shaped like the server's (field order of MongoDB 7: _id, operationType,
 * clusterTime, wallTime, fullDocument, ns, documentKey, updateDescription), with emulator-style
 * resume tokens in event order. Used by the in-process benchmark in place of a server.
 */
import { Int32, Timestamp, type Document } from 'mongodb';
import { makeDoc, prng, type OpMix } from './workload.js';

const hex8 = (n: number) => n.toString(16).toUpperCase().padStart(8, '0');

export class ChangeEventGenerator {
  private readonly rand: () => number;
  private readonly live: number[] = [];
  private nextId = 0;
  private n = 0;
  private readonly t0 = Math.floor(Date.now() / 1000);
  constructor(
    private readonly bytes: number,
    private readonly mix: OpMix,
    seed = 1,
    private readonly ns = { db: 'bench', coll: 'docs' },
  ) {
    this.rand = prng(seed);
  }

  next(): Document {
    this.n++;
    const t = this.t0 + Math.floor(this.n / 50_000);
    const i = (this.n % 50_000) + 1;
    const token = { _data: `82${hex8(t)}${hex8(i)}0000000000` };
    const head = { _id: token } as Document;
    const clusterTime = new Timestamp({ t, i });
    const wallTime = new Date();
    const x = this.rand();
    if (this.live.length < 10 || x < this.mix.insert) {
      const id = this.nextId++;
      this.live.push(id);
      const doc = makeDoc(id, this.bytes, this.rand);
      return { ...head, operationType: 'insert', clusterTime, wallTime, fullDocument: doc, ns: this.ns, documentKey: { _id: id } };
    }
    if (x < this.mix.insert + this.mix.update) {
      const id = this.live[Math.floor(this.rand() * this.live.length)];
      const doc = makeDoc(id, this.bytes, this.rand);
      const updatedFields = { name: doc.name, updatedAt: doc.updatedAt, stock: new Int32(doc.stock as number) };
      return {
        ...head,
        operationType: 'update',
        clusterTime,
        wallTime,
        fullDocument: doc,
        ns: this.ns,
        documentKey: { _id: id },
        updateDescription: { updatedFields, removedFields: [], truncatedArrays: [] },
      };
    }
    const k = Math.floor(this.rand() * this.live.length);
    const id = this.live[k];
    this.live[k] = this.live[this.live.length - 1];
    this.live.pop();
    return { ...head, operationType: 'delete', clusterTime, wallTime, ns: this.ns, documentKey: { _id: id } };
  }
}
