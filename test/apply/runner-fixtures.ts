// Shared fixtures of the apply-runner tests: a scenario generator with its expected final state,
// a producer helper, the local stack (MongoDB emulator as target + state store, kinesis-local).
import { Writable } from 'node:stream';
import { MongoClient, type Document } from 'mongodb';
import { createOrderedProducer } from '../../src/transport/ordered-producer.js';
import { encodeEnvelope, routingKey, type ChangeEnvelope, type CollectionNamespace } from '../../src/model/change-envelope.js';
import { createLogger, type Logger } from '../../src/util/logger.js';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { startKinesisLocal, type KinesisLocal } from '../support/kinesis-local.js';
import type { KinesisClient } from '@aws-sdk/client-kinesis';

import { prng } from '../support/prng.js';
import { Clock } from '../support/stream-positions.js';

export { prng };

/** Source-side model: envelopes plus the expected target state (per target namespace). */
export class Scenario {
  readonly envelopes: ChangeEnvelope[] = [];
  /** Expected documents per SOURCE namespace `db.coll`. */
  readonly state = new Map<string, Map<number, Document>>();
  readonly clock: Clock;
  private readonly rand: () => number;

  constructor(seed: number, clock = new Clock()) {
    this.rand = prng(seed);
    this.clock = clock;
  }

  private coll(ns: CollectionNamespace): Map<number, Document> {
    const k = `${ns.db}.${ns.coll}`;
    let m = this.state.get(k);
    if (!m) this.state.set(k, (m = new Map()));
    return m;
  }

  /** `count` random data events over `docs` documents of `ns`. */
  data(ns: CollectionNamespace, count: number, docs: number): this {
    const m = this.coll(ns);
    for (let k = 0; k < count; k++) {
      const id = Math.floor(this.rand() * docs);
      const pos = this.clock.next();
      const existing = m.get(id);
      const x = this.rand();
      if (!existing) {
        const doc = { _id: id, v: Math.floor(this.rand() * 1e6), tags: ['a'], at: pos.wt };
        m.set(id, doc);
        this.envelopes.push({ v: 1, op: 'insert', ns, key: { _id: id }, doc, ...pos });
      } else if (x < 0.55) {
        const doc = { ...existing, v: Math.floor(this.rand() * 1e6), tags: [...((existing.tags as string[] | undefined) ?? []).slice(-3), 'u'] };
        if (this.rand() < 0.3) delete (doc as Document).at;
        m.set(id, doc);
        this.envelopes.push({ v: 1, op: 'update', ns, key: { _id: id }, doc, ...pos });
      } else if (x < 0.7) {
        const doc = { _id: id, replaced: true, v: Math.floor(this.rand() * 1e6) };
        m.set(id, doc);
        this.envelopes.push({ v: 1, op: 'replace', ns, key: { _id: id }, doc, ...pos });
      } else {
        m.delete(id);
        this.envelopes.push({ v: 1, op: 'delete', ns, key: { _id: id }, ...pos });
      }
    }
    return this;
  }

  drop(ns: CollectionNamespace): this {
    this.coll(ns).clear();
    this.envelopes.push({ v: 1, op: 'drop', ns, ...this.clock.next() });
    return this;
  }

  barrier(id: string): this {
    const { ct, rt } = this.clock.next();
    this.envelopes.push({ v: 1, op: 'barrier', ns: { db: '' }, barrier: { id }, ct, rt });
    return this;
  }

  /** Expected documents of a source namespace, sorted by _id. */
  expected(ns: string): Document[] {
    return [...(this.state.get(ns)?.values() ?? [])].sort((a, b) => (a._id as number) - (b._id as number));
  }
}

/** Sends envelopes through the real ordered producer (data by routing key, DDL/barriers broadcast). */
export async function produce(
  client: KinesisClient,
  streamName: string,
  envelopes: readonly ChangeEnvelope[],
  tagStart = 1,
  /** Flush every N envelopes (more, smaller Kinesis records: the producer aggregates otherwise). */
  flushEvery?: number,
): Promise<{ copies: number }> {
  const p = await createOrderedProducer({ client, streamName, lingerMs: 5 });
  const shards = p.shardMap.openShards.length;
  let copies = 0;
  let tag = tagStart;
  for (const e of envelopes) {
    const key = routingKey(e);
    if (key === undefined) {
      await p.sendBroadcast(encodeEnvelope(e), tag++);
      copies += shards;
    } else {
      await p.send(key, encodeEnvelope(e), tag++);
      copies += 1;
    }
    if (flushEvery && (tag - tagStart) % flushEvery === 0) await p.flush();
  }
  await p.close();
  return { copies };
}

export async function targetDocs(client: MongoClient, ns: string): Promise<Document[]> {
  const [db, ...rest] = ns.split('.');
  return client.db(db!).collection(rest.join('.')).find({}).sort({ _id: 1 }).toArray();
}

/** A quiet logger (set APPLY_TEST_LOGS=1 to see the logs). */
export function testLogger(): Logger {
  if (process.env.APPLY_TEST_LOGS) return createLogger({ format: 'text', verbose: true });
  const sink = new Writable({ write: (_c, _e, done) => done() });
  return createLogger({ format: 'json', verbose: false, out: sink });
}

export interface Stack {
  emu: MongoEmulator;
  client: MongoClient;
  kl: KinesisLocal;
  stop(): Promise<void>;
}

export async function startStack(): Promise<Stack> {
  const [emu, kl] = await Promise.all([startMongoEmulator({ port: 0 }), startKinesisLocal()]);
  const client = new MongoClient(emu.uri, { serverSelectionTimeoutMS: 10_000 });
  await client.connect();
  return {
    emu,
    client,
    kl,
    async stop() {
      await client.close().catch(() => undefined);
      await Promise.all([emu.stop(), kl.stop()]);
    },
  };
}

export const FAST_CONSUMER = { minCallIntervalMs: 20, idlePollMinMs: 20, idlePollMaxMs: 100, shardDiscoveryIntervalMs: 300 } as const;

