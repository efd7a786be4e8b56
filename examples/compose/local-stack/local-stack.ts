/**
 * The `local` profile of examples/compose/docker-compose.yml: the project's own local stack in one
 * container, so `docker compose --profile local up` migrates a demo database on a laptop.
 *
 *   tsx examples/compose/local-stack/local-stack.ts serve    source + target MongoDB emulators and
 *       kinesis-local with a stream; seeds bar.products / bar.orders; runs until SIGTERM.
 *   tsx examples/compose/local-stack/local-stack.ts writes   waits until the migration has started
 *       (its phase is past CREATED), makes a bounded set of changes on the source (inserts, updates
 *       that add `reviews`, deletes), and exits 0: the changes travel through capture → Kinesis → apply.
 *
 * The emulators and kinesis-local (test/support) listen on loopback only, and the emulators announce
 * themselves as 127.0.0.1 in `hello`; `serve` forwards LOCAL_STACK_HOST:{source,target,kinesis} ports
 * to them, so other containers reach them by the service name, with `directConnection=true` in the
 * connection strings (a replica-set URI would follow the announced 127.0.0.1 member address).
 *
 * Environment (defaults are the Compose file's):
 *   serve:  LOCAL_STACK_HOST (0.0.0.0), LOCAL_STACK_SOURCE_PORT (27017), LOCAL_STACK_TARGET_PORT (27018),
 *           LOCAL_STACK_KINESIS_PORT (4567) — 0 picks a free port; LOCAL_STACK_STREAM (migrator-demo),
 *           LOCAL_STACK_SHARDS (2), LOCAL_STACK_PRODUCTS (2000), LOCAL_STACK_READY_FILE (/tmp/local-stack-ready:
 *           written once everything listens and the seed is in, for the healthcheck).
 *           Prints one JSON line {"sourcePort", "targetPort", "kinesisPort", "stream"} when ready.
 *   writes: DEMO_SOURCE_URI, DEMO_STATE_URI, DEMO_STATE_DB (migrator_state), DEMO_MIGRATION_ID (default),
 *           DEMO_CHANGES (300).
 */
import { writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Decimal128, Int32, MongoClient, type Document } from 'mongodb';

type Doc = Document & { _id: number | string };
import { startMongoEmulator } from '../../../packages/mongo-emulator/src/index.js';
import { startKinesisLocal } from '../../../test/support/kinesis-local.js';

const env = process.env;
const num = (name: string, dflt: number) => (env[name] === undefined || env[name] === '' ? dflt : Number(env[name]));

/** Forwards host:port to 127.0.0.1:to, byte for byte. Resolves with the port it listens on. */
function forward(host: string, port: number, to: number): Promise<{ server: Server; port: number }> {
  const server = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port: to });
    client.pipe(upstream).pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close);
    upstream.on('error', close);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const addr = server.address();
      resolve({ server, port: typeof addr === 'object' && addr ? addr.port : port });
    });
  });
}

async function seed(uri: string, products: number): Promise<void> {
  const client = new MongoClient(uri);
  try {
    const bar = client.db('bar');
    await bar.collection('products').createIndex({ sku: 1 }, { unique: true });
    const docs = Array.from({ length: products }, (_, i) => ({
      _id: i,
      sku: `SKU-${String(i).padStart(6, '0')}`,
      name: `Product ${i}`,
      price: Decimal128.fromString(`${(i % 500) + 0.99}`),
      stock: new Int32(i % 97),
      tags: i % 3 === 0 ? ['sale'] : [],
      addedAt: new Date(Date.UTC(2026, 0, 1) + i * 60_000),
    }));
    for (let i = 0; i < docs.length; i += 1000) await bar.collection<Doc>('products').insertMany(docs.slice(i, i + 1000));
    const orders = Array.from({ length: Math.ceil(products / 2) }, (_, i) => ({ _id: `o${i}`, productId: i * 2, qty: new Int32(1 + (i % 5)) }));
    if (orders.length) await bar.collection<Doc>('orders').insertMany(orders);
  } finally {
    await client.close();
  }
}

async function serve(): Promise<void> {
  const host = env.LOCAL_STACK_HOST || '0.0.0.0';
  const [source, target, kinesis] = await Promise.all([startMongoEmulator(), startMongoEmulator(), startKinesisLocal()]);
  const stream = env.LOCAL_STACK_STREAM || 'migrator-demo';
  await kinesis.createStream(stream, num('LOCAL_STACK_SHARDS', 2));
  await seed(source.uri, num('LOCAL_STACK_PRODUCTS', 2000));
  const forwards = await Promise.all([
    forward(host, num('LOCAL_STACK_SOURCE_PORT', 27017), source.port),
    forward(host, num('LOCAL_STACK_TARGET_PORT', 27018), target.port),
    forward(host, num('LOCAL_STACK_KINESIS_PORT', 4567), kinesis.port),
  ]);
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    for (const f of forwards) f.server.close();
    await Promise.allSettled([source.stop(), target.stop(), kinesis.stop()]);
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
  writeFileSync(env.LOCAL_STACK_READY_FILE || '/tmp/local-stack-ready', 'ready\n');
  process.stdout.write(JSON.stringify({ sourcePort: forwards[0].port, targetPort: forwards[1].port, kinesisPort: forwards[2].port, stream }) + '\n');
}

async function writes(): Promise<void> {
  const sourceUri = env.DEMO_SOURCE_URI;
  const stateUri = env.DEMO_STATE_URI;
  if (!sourceUri || !stateUri) throw new Error('DEMO_SOURCE_URI and DEMO_STATE_URI are needed');
  const id = env.DEMO_MIGRATION_ID || 'default';
  const changes = num('DEMO_CHANGES', 300);
  const src = new MongoClient(sourceUri);
  const state = new MongoClient(stateUri);
  try {
    // Changes made once the resume point is recorded (phase past CREATED) reach the target through
    // the change stream: during the load or after it, both are the demo's point.
    const migrations = state.db(env.DEMO_STATE_DB || 'migrator_state').collection<{ _id: string; phase: string }>('migrations');
    for (;;) {
      const m = await migrations.findOne({ _id: id }).catch(() => null);
      if (m && m.phase !== 'CREATED') break;
      await sleep(500);
    }
    const products = src.db('bar').collection<Doc>('products');
    for (let i = 0; i < changes; i++) {
      if (i % 3 === 0) await src.db('bar').collection<{ _id: number; reviews: Document[] }>('products').updateOne({ _id: i }, { $push: { reviews: { stars: new Int32(1 + (i % 5)), text: `review ${i}` } } });
      else if (i % 3 === 1) await products.insertOne({ _id: 1_000_000 + i, sku: `NEW-${i}`, name: `New product ${i}`, price: Decimal128.fromString('9.99') });
      else await products.deleteOne({ _id: i });
      if (i % 20 === 0) await sleep(50);
    }
    process.stdout.write(`${changes} changes written to bar.products\n`);
  } finally {
    await Promise.all([src.close(), state.close()]);
  }
}

const mode = process.argv[2];
try {
  if (mode === 'serve') await serve();
  else if (mode === 'writes') await writes();
  else throw new Error(`usage: local-stack.ts serve|writes (got ${String(mode)})`);
} catch (err) {
  process.stderr.write(`local-stack ${String(mode)}: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
