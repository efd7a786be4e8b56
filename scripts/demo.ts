/**
 * `npm run demo`: a whole online migration on your machine, with nothing but Node.js and Go.
 * It is what a newcomer runs first, and it is written to be read: every step below is what you
 * would do for a real migration, with the real `migrator` CLI.
 *
 *   1. Start a local stack in this process: a source MongoDB emulator (a replica set with change
 *      streams), a target (another emulator, or FerretDB with `--target ferretdb`) and
 *      kinesis-local with a 2-shard stream `migrator-demo`.
 *   2. Seed a product catalogue on the source: `bar.products` (unique `sku`, Decimal128 `price`,
 *      Int32 `stock`, dates, tags) and `bar.orders`.
 *   3. Run `migrator full-migrate` (a child process) to migrate `bar` into `bar_new` on the target,
 *      while a workload keeps writing to the source: new products, price changes, reviews (the
 *      update of the AWS blog's demo: it adds a `reviews` array), deletes and orders. Show the
 *      progress from `migrator status --json` until the migration is READY_FOR_CUTOVER, and let
 *      the writes go on a little longer (`--duration`).
 *   4. Stop the writes and `migrator cutover --writes-stopped --wait`.
 *   5. `migrator verify`, and a summary.
 *
 *   npm run demo -- [--target emulator|ferretdb] [--products 5000] [--duration 10s] [--keep]
 *
 * Exit code 0 when the migration COMPLETED and verified equal; otherwise non-zero (the migrator's
 * own exit code when one of its commands failed) with a message saying what went wrong.
 * Everything the demo starts is stopped when it exits, and on Ctrl-C.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import { Decimal128, Int32, MongoClient, ObjectId, type Db } from 'mongodb';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import type { StatusReport } from '../src/orchestration/status-report.js';
import { TERMINAL_PHASES } from '../src/state/phases.js';
import { formatDuration, parseDuration } from '../src/util/duration.js';
import { ExitCode } from '../src/util/exit-codes.js';
import { startFerretDB } from '../test/support/ferretdb.js';
import { ensureGoTools, goToolPath, type GoTool } from '../test/support/go-tools.js';
import { startKinesisLocal } from '../test/support/kinesis-local.js';
import { startMongoEmulator } from '../packages/mongo-emulator/src/index.js';
import { prng } from '../test/support/prng.js';

// The AWS SDK (kinesis-local's client runs in this process) warns under Node 20 that its releases
// of 2027 will need Node 22: noise in a demo. Every other warning is still printed.
const emitWarning = process.emitWarning.bind(process);
process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
  const text = typeof warning === 'string' ? warning : warning.message;
  if (/NodeVersionSupportWarning|AWS SDK for JavaScript \(v3\)/.test(text) || rest.includes('NodeVersionSupportWarning')) return;
  (emitWarning as (...a: unknown[]) => void)(warning, ...rest);
}) as typeof process.emitWarning;

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = path.join(ROOT, 'src', 'cli', 'main.ts');
const STREAM = 'migrator-demo';
const STREAM_SHARDS = 2;
const MIGRATION_ID = 'demo';
/** Give up when full-migrate has not caught up after this long. */
const READY_TIMEOUT_MS = 5 * 60_000;
/** Writes keep going at least this long once READY_FOR_CUTOVER: replication of a live source. */
const WRITES_WHILE_READY_MS = 2_000;
/** How long full-migrate may take to finish once `cutover --wait` returned. */
const EXIT_TIMEOUT_MS = 60_000;
const INTERRUPTED = ExitCode.INTERRUPTED;

// ---------------------------------------------------------------------------------------------
// Options

const argv = await yargs(hideBin(process.argv))
  .scriptName('npm run demo --')
  .usage(
    '$0 [options]\n\nMigrates a product catalogue (bar → bar_new) on a local stack while it is being written to, ' +
      'then cuts over and verifies, with the real migrator CLI. Takes under a minute.',
  )
  .option('target', { choices: ['emulator', 'ferretdb'] as const, default: 'emulator' as const, describe: 'Target database' })
  .option('products', { type: 'number', default: 5000, describe: 'Products to seed in bar.products' })
  .option('duration', { type: 'string', default: '10s', describe: 'How long the live workload writes before the cutover (10s, 1m)' })
  .option('rate', { type: 'number', describe: 'Workload writes per second [default: 100; 20 with --target ferretdb]' })
  .option('keep', { type: 'boolean', default: false, describe: 'Leave the stack running at the end and print its URIs, until Ctrl-C' })
  .check((a) => {
    if (!Number.isInteger(a.products) || a.products < 1) throw new Error(`--products: expected a positive integer (got ${a.products})`);
    if (parseDuration(a.duration) === undefined) throw new Error(`--duration: expected a duration like 10s or 1m (got "${a.duration}")`);
    if (a.rate !== undefined && !(a.rate > 0)) throw new Error(`--rate: expected a positive number (got ${a.rate})`);
    return true;
  })
  .strict()
  .help()
  .parseAsync();

const durationMs = parseDuration(argv.duration)!;
// FerretDB (SQLite) takes ~20 ms a write: a faster workload would keep it from ever catching up.
const rate = argv.rate ?? (argv.target === 'ferretdb' ? 20 : 100);

// ---------------------------------------------------------------------------------------------
// Output: the demo's own lines, and its children's lines behind a label

const useColor = Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;
const paint = (code: number) => (s: string) => (useColor ? `\x1b[${code}m${s}\x1b[0m` : s);
const bold = paint(1);
const dim = paint(2);
const red = paint(31);
const green = paint(32);
const cyan = paint(36);

const startedAt = Date.now();
const fmt = (n: number) => n.toLocaleString('en-US');
const since = (t: number) => formatDuration(Date.now() - t);

function say(line = ''): void {
  process.stdout.write(`${line}\n`);
}

function step(n: number, title: string): void {
  say();
  say(bold(`[${n}/5] ${title}`));
}

/** `label │ line`: who said what, when several processes talk at once. */
function labelled(label: string, line: string): void {
  say(`${cyan(label.padStart(12))} ${dim('│')} ${line}`);
}

/** A command line as you would type it (paths inside the project made relative). */
function commandLine(args: string[]): string {
  const shown = args.map((a) => (a.startsWith(ROOT) ? path.relative(ROOT, a) : a));
  return ['migrator', ...shown.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a}'`))].join(' ');
}

// ---------------------------------------------------------------------------------------------
// Everything the demo starts is registered here, and stopped in reverse order on exit

class DemoError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

const cleanups: { name: string; run: () => Promise<unknown> }[] = [];
const onExit = (name: string, run: () => Promise<unknown>) => void cleanups.push({ name, run });
let shuttingDown = false;
/** Exit code on Ctrl-C: "interrupted", except while --keep is waiting for it. */
let codeOnSignal: number = INTERRUPTED;

async function shutdown(code: number): Promise<never> {
  if (!shuttingDown) {
    shuttingDown = true;
    await stopMigrators();
    for (const c of cleanups.reverse()) {
      await c.run().catch((err: unknown) => process.stderr.write(`demo: stopping ${c.name} failed: ${String(err)}\n`));
    }
    process.exit(code);
  }
  return new Promise<never>(() => undefined); // the first call exits
}

let firstSignalAt = 0;

function onSignal(name: string): void {
  if (shuttingDown) {
    // One Ctrl-C often arrives twice: from the terminal, and relayed by tsx (or npm). A later one
    // means "now".
    if (Date.now() - firstSignalAt < 2_000) return;
    process.stderr.write(`demo: ${name} again: exiting without waiting\n`);
    process.exit(INTERRUPTED);
  }
  firstSignalAt = Date.now();
  if (codeOnSignal === INTERRUPTED) say(`\n${bold(name)}: stopping everything the demo started…`);
  void shutdown(codeOnSignal);
}
process.on('SIGINT', () => onSignal('SIGINT'));
process.on('SIGTERM', () => onSignal('SIGTERM'));

// ---------------------------------------------------------------------------------------------
// Step 1: the local stack (what `npm run stack` starts, here in this process)

interface Stack {
  sourceUri: string;
  targetUri: string;
  kinesisEndpoint: string;
}

async function startStack(): Promise<Stack> {
  const tools: GoTool[] = argv.target === 'ferretdb' ? ['mongodump', 'mongorestore', 'ferretdb'] : ['mongodump', 'mongorestore'];
  say(dim(`building ${tools.join(', ')} from the Go module proxy if needed (first run only: a few minutes)…`));
  await ensureGoTools(tools);

  const source = await startMongoEmulator();
  onExit('the source emulator', () => source.stop());
  const target = argv.target === 'ferretdb' ? await startFerretDB() : await startMongoEmulator();
  onExit(`the target ${argv.target}`, () => target.stop());
  const kinesis = await startKinesisLocal();
  onExit('kinesis-local', () => kinesis.stop());
  await kinesis.createStream(STREAM, STREAM_SHARDS);

  say(`  source   ${source.uri}  (MongoDB emulator: a replica set with change streams)`);
  say(`  target   ${target.uri}  (${argv.target === 'ferretdb' ? 'FerretDB 1.x on SQLite' : 'MongoDB emulator'})`);
  say(`  kinesis  ${kinesis.endpoint}  (kinesis-local; stream ${STREAM} with ${STREAM_SHARDS} shards)`);
  return { sourceUri: source.uri, targetUri: target.uri, kinesisEndpoint: kinesis.endpoint };
}

// ---------------------------------------------------------------------------------------------
// Step 2 and the workload: the product catalogue

const CATALOG: Record<string, string[]> = {
  kitchen: ['kettle', 'chef knife', 'frying pan', 'teapot', 'cutting board', 'salad bowl'],
  garden: ['watering can', 'pruning shears', 'planter', 'garden hose', 'bird feeder'],
  office: ['desk lamp', 'notebook', 'fountain pen', 'monitor stand', 'paper tray'],
  outdoor: ['tent', 'camping stove', 'backpack', 'water bottle', 'sleeping bag'],
};
const STYLES = ['Classic', 'Compact', 'Deluxe', 'Eco', 'Nordic', 'Pro', 'Smart', 'Vintage'];
const MATERIALS = ['steel', 'oak', 'bamboo', 'ceramic', 'cotton', 'glass', 'recycled'];
const REVIEWS = ['Does the job.', 'Great value.', 'Arrived quickly.', 'Smaller than expected.', 'Would buy again!'];

type WriteKind = 'insert' | 'price' | 'review' | 'delete' | 'order';
/** The workload's mix of writes, by weight. */
const WRITE_MIX: [WriteKind, number][] = [
  ['insert', 25],
  ['price', 30],
  ['review', 25],
  ['delete', 10],
  ['order', 10],
];

type Money = Decimal128 | number;

interface Review {
  user: string;
  rating: Int32;
  text: string;
  at: Date;
}

interface Product {
  _id: ObjectId;
  sku: string;
  name: string;
  category: string;
  price: Money;
  stock: Int32;
  tags: string[];
  createdAt: Date;
  updatedAt?: Date;
  reviews?: Review[];
}

interface Order {
  _id: string;
  customer: string;
  items: { sku: string; qty: Int32; price: Money }[];
  total: Money;
  status: string;
  createdAt: Date;
}

class Catalogue {
  private readonly random = prng(20240611);
  /** Products that exist on the source, for updates, deletes and orders. */
  private readonly live: { _id: ObjectId; sku: string; price: number }[] = [];
  private skus = 0;
  private orderNumbers = 0;

  /**
   * `money` stores a price: Decimal128, as money should be, except on FerretDB 1.x, which has no
   * Decimal128 (a double there).
   */
  constructor(
    private readonly db: Db,
    private readonly money: (amount: number) => Money,
  ) {}

  private get products() {
    return this.db.collection<Product>('products');
  }

  private get orders() {
    return this.db.collection<Order>('orders');
  }

  private pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.random() * items.length)]!;
  }

  private newProduct(): Product {
    const category = this.pick(Object.keys(CATALOG));
    const material = this.pick(MATERIALS);
    const price = Math.round((4.99 + this.random() * 195) * 100) / 100;
    const doc: Product = {
      _id: new ObjectId(),
      sku: `SKU-${String(++this.skus).padStart(6, '0')}`,
      name: `${this.pick(STYLES)} ${material} ${this.pick(CATALOG[category]!)}`,
      category,
      price: this.money(price),
      stock: new Int32(Math.floor(this.random() * 500)),
      tags: [category, material, ...(this.random() < 0.2 ? ['sale'] : [])],
      createdAt: new Date(Date.now() - Math.floor(this.random() * 365 * 86_400_000)),
    };
    this.live.push({ _id: doc._id, sku: doc.sku, price });
    return doc;
  }

  /** An order with ids that are strings, not ObjectIds: any _id type migrates. */
  private newOrder(): Order {
    let total = 0;
    const items = Array.from({ length: 1 + Math.floor(this.random() * 3) }, () => {
      const p = this.pick(this.live);
      const qty = 1 + Math.floor(this.random() * 3);
      total += qty * p.price;
      return { sku: p.sku, qty: new Int32(qty), price: this.money(p.price) };
    });
    return {
      _id: `ORD-${String(++this.orderNumbers).padStart(7, '0')}`,
      customer: `customer${Math.floor(this.random() * 2000)}@example.com`,
      items,
      total: this.money(Math.round(total * 100) / 100),
      status: this.pick(['paid', 'shipped', 'delivered']),
      createdAt: new Date(),
    };
  }

  async seed(products: number): Promise<{ products: number; orders: number }> {
    await this.products.createIndex({ sku: 1 }, { unique: true });
    await this.products.createIndex({ category: 1, price: 1 });
    for (let done = 0; done < products; done += 1000) {
      await this.products.insertMany(Array.from({ length: Math.min(1000, products - done) }, () => this.newProduct()));
    }
    const orders = Math.ceil(products / 5);
    await this.orders.createIndex({ customer: 1 });
    await this.orders.insertMany(Array.from({ length: orders }, () => this.newOrder()));
    return { products, orders };
  }

  /** One write of the live workload, chosen by WRITE_MIX. */
  async write(): Promise<WriteKind> {
    let r = this.random() * WRITE_MIX.reduce((n, [, w]) => n + w, 0);
    let kind = WRITE_MIX.find(([, w]) => (r -= w) < 0)![0];
    if (this.live.length < 10 && kind !== 'order') kind = 'insert';
    const index = Math.floor(this.random() * this.live.length);
    const p = this.live[index]!;
    switch (kind) {
      case 'insert':
        await this.products.insertOne(this.newProduct());
        break;
      case 'price':
        p.price = Math.round(p.price * (0.8 + this.random() * 0.4) * 100) / 100;
        await this.products.updateOne({ _id: p._id }, { $set: { price: this.money(p.price), updatedAt: new Date() } });
        break;
      case 'review':
        // The update of the AWS blog's demo: the first review adds a `reviews` array.
        await this.products.updateOne(
          { _id: p._id },
          { $push: { reviews: { user: `user${Math.floor(this.random() * 500)}`, rating: new Int32(1 + Math.floor(this.random() * 5)), text: this.pick(REVIEWS), at: new Date() } } },
        );
        break;
      case 'delete':
        this.live[index] = this.live[this.live.length - 1]!;
        this.live.pop();
        await this.products.deleteOne({ _id: p._id });
        break;
      case 'order': {
        const order = this.newOrder();
        await this.orders.insertOne(order);
        for (const item of order.items) await this.products.updateOne({ sku: item.sku }, { $inc: { stock: new Int32(-item.qty.value) } });
        break;
      }
    }
    return kind;
  }
}

/** Writes to the source at `rate` writes a second until stopped. */
class Workload {
  readonly counts: Record<WriteKind, number> = { insert: 0, price: 0, review: 0, delete: 0, order: 0 };
  total = 0;
  failure: unknown;
  readonly startedAt = Date.now();
  private running = true;
  private readonly done: Promise<void>;

  constructor(catalogue: Catalogue, rate: number) {
    this.done = (async () => {
      while (this.running) {
        this.counts[await catalogue.write()]++;
        this.total++;
        const due = this.startedAt + (this.total * 1000) / rate;
        if (due > Date.now()) await sleep(due - Date.now());
      }
    })().catch((err: unknown) => void (this.failure = err));
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }

  describe(): string {
    const c = this.counts;
    return `${fmt(this.total)} writes: ${fmt(c.insert)} new products, ${fmt(c.price)} price changes, ${fmt(c.review)} reviews, ${fmt(c.delete)} deletes, ${fmt(c.order)} orders`;
  }
}

// ---------------------------------------------------------------------------------------------
// The migrator CLI, run from source as a child process, exactly as a user runs it

interface Migrator {
  proc: ResultPromise;
  /** The last KEPT_LINES lines it printed (stdout and stderr). */
  lines: string[];
  /** Its exit code once it ended; undefined while it runs. */
  exitCode?: number;
  /** How it ended, for messages: `exited with code 3`, `was killed by SIGKILL`. */
  ended?: string;
  exited: Promise<number>;
}

const KEPT_LINES = 1000;
const running = new Set<ResultPromise>();

/** Stops every migrator process still running: first thing on exit, before the stack goes away. */
async function stopMigrators(): Promise<void> {
  for (const proc of running) proc.kill('SIGINT'); // each stops gracefully (execa SIGKILLs after 10 s)
  await Promise.allSettled([...running]);
}

/** The environment of the CLI: no MIGRATOR_* variables of your shell, plain progress lines. */
function cliEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('MIGRATOR_') && v !== undefined) env[k] = v;
  return { ...env, CI: 'true', NO_COLOR: '1' };
}

/**
 * Starts `migrator ARGS`. Its lines are shown behind `label` unless `onLine` takes them;
 * the command line is shown first unless `quiet`.
 */
function migrator(label: string, args: string[], opts: { onLine?: (line: string, from: 'stdout' | 'stderr') => void; quiet?: boolean } = {}): Migrator {
  if (!opts.quiet) say(dim(`$ ${commandLine(args)}`));
  const proc = execa(process.execPath, ['--import', 'tsx', CLI, ...args], {
    cwd: ROOT,
    env: cliEnv(),
    extendEnv: false,
    stdin: 'ignore',
    buffer: false,
    reject: false,
    forceKillAfterDelay: 10_000,
  });
  running.add(proc);
  const m: Migrator = {
    proc,
    lines: [],
    exited: proc.then((r) => {
      running.delete(proc);
      m.ended = r.exitCode === undefined ? `was killed by ${r.signal ?? 'a signal'}` : `exited with code ${r.exitCode}`;
      return (m.exitCode = r.exitCode ?? 1);
    }),
  };
  for (const [stream, from] of [[proc.stdout, 'stdout'], [proc.stderr, 'stderr']] as const) {
    createInterface({ input: stream }).on('line', (line) => {
      if (m.lines.push(line) > KEPT_LINES) m.lines.shift();
      if (opts.onLine) opts.onLine(line, from);
      else if (line.trim()) labelled(label, line);
    });
  }
  return m;
}

/** The options every command of this migration gets. */
function migrationArgs(stack: Stack): string[] {
  return [
    '--source-uri', stack.sourceUri,
    '--target-uri', stack.targetUri,
    '--include', 'bar.*',
    '--map', 'bar:bar_new',
    '--kinesis-stream', STREAM,
    '--kinesis-endpoint', stack.kinesisEndpoint,
    '--migration-id', MIGRATION_ID,
  ];
}

/**
 * `migrator status --json --watch`: one JSON report a second, until the migration ends. Restarted
 * when it exits early (before full-migrate created the migration it says "unknown migration").
 */
class StatusWatcher {
  latest?: StatusReport;
  private current?: Migrator;
  private stopped = false;
  private readonly done: Promise<void>;

  constructor(args: string[], onReport: (r: StatusReport) => void) {
    this.done = (async () => {
      for (let first = true; !this.stopped; first = false) {
        this.current = migrator('status', ['status', '--json', '--watch', '--interval', '1s', ...args], {
          quiet: !first,
          onLine: (line, from) => {
            if (from !== 'stdout' || !line.startsWith('{')) return;
            this.latest = JSON.parse(line) as StatusReport;
            onReport(this.latest);
          },
        });
        await this.current.exited;
        if (this.latest && TERMINAL_PHASES.includes(this.latest.phase)) return;
        await sleep(1000);
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.current?.proc.kill('SIGINT');
    await this.done;
  }
}

function progressLine(r: StatusReport, workload: Workload | undefined): string {
  const parts: string[] = [bold(r.phase.padEnd(17))];
  if (r.load && !r.load.done && r.load.totalDocuments === 0) parts.push('load starting');
  else if (r.load && !r.load.done) parts.push(`load ${r.load.percent.toFixed(1)}% (${fmt(r.load.restoredDocuments)}/${fmt(r.load.totalDocuments)} docs)`);
  else if (r.load) parts.push('load 100%');
  parts.push(`captured ${fmt(r.capture?.events ?? 0)}`, `applied ${fmt(r.apply.events)}`);
  parts.push(r.lag.events === 0 ? 'lag 0' : `lag ${fmt(r.lag.events)} events${r.lag.seconds === null ? '' : ` (${r.lag.seconds}s)`}`);
  if (workload) parts.push(dim(`source writes ${fmt(workload.total)}`));
  return parts.join('  ');
}

// ---------------------------------------------------------------------------------------------
// The demo

/** The stack once started, for --keep. */
let startedStack: Stack | undefined;

async function demo(): Promise<void> {
  step(1, `Start the local stack (target: ${argv.target})`);
  let t = Date.now();
  const stack = await startStack();
  startedStack = stack;
  say(dim(`  ready in ${since(t)}`));

  step(2, 'Seed a product catalogue on the source');
  const source = new MongoClient(stack.sourceUri);
  const target = new MongoClient(stack.targetUri);
  onExit('database clients', () => Promise.all([source.close(), target.close()]));
  const money = argv.target === 'ferretdb' ? (x: number) => x : (x: number) => Decimal128.fromString(x.toFixed(2));
  if (argv.target === 'ferretdb') say(dim('  prices are doubles: FerretDB 1.x has no Decimal128'));
  const catalogue = new Catalogue(source.db('bar'), money);
  t = Date.now();
  const seeded = await catalogue.seed(argv.products);
  say(`  bar.products: ${fmt(seeded.products)} products (unique index on sku), bar.orders: ${fmt(seeded.orders)} orders, in ${since(t)}`);
  say(dim(`  e.g. ${JSON.stringify(await source.db('bar').collection('products').findOne({}, { projection: { _id: 0 } }))}`));

  step(3, `Migrate bar → bar_new with full-migrate while the source takes ${rate} writes/s; follow it with status`);
  const dataDir = await mkdtemp(path.join(tmpdir(), 'migrator-demo-'));
  onExit('the data directory', () => rm(dataDir, { recursive: true, force: true }));
  say(dim(`(migrator = node --import tsx src/cli/main.ts: the CLI, run from source)`));
  const args = migrationArgs(stack);
  const migrationStartedAt = Date.now();
  const fullMigrate = migrator('full-migrate', [
    'full-migrate', ...args,
    '--mongodump-path', goToolPath('mongodump'),
    '--mongorestore-path', goToolPath('mongorestore'),
    '--data-dir', dataDir,
    '--log-format', 'text',
  ], {
    // Its task output lines (`› CATCHING_UP: applied 1234 events`) say what the status line says.
    onLine: (line) => line.trim() && !line.startsWith('› ') && labelled('full-migrate', line),
  });
  const workload = new Workload(catalogue, rate);

  const status = new StatusWatcher(args, (r) => labelled('status', progressLine(r, workload.failure ? undefined : workload)));
  onExit('migrator status', () => status.stop());

  // Wait for READY_FOR_CUTOVER, then let the writes go on: at least --duration of writes in all,
  // and some of them while the migration is ready (replication keeps up with a live source).
  let readyAt: number | undefined;
  for (;;) {
    if (workload.failure) throw new DemoError(`the workload's write to the source failed: ${String(workload.failure)}`);
    if (fullMigrate.exitCode !== undefined) {
      throw new DemoError(`migrator full-migrate ${fullMigrate.ended} before the cutover (its output is above)`, fullMigrate.exitCode || 1);
    }
    const phase = status.latest?.phase;
    if (phase === 'FAILED' || phase === 'ABORTED') throw new DemoError(`the migration is ${phase}: ${status.latest?.lastError?.message ?? 'see the output above'}`);
    if (phase === 'READY_FOR_CUTOVER' && readyAt === undefined) {
      readyAt = Date.now();
      const left = Math.max(workload.startedAt + durationMs, readyAt + WRITES_WHILE_READY_MS) - Date.now();
      say(green(`READY_FOR_CUTOVER after ${since(migrationStartedAt)}: the target has caught up with the source.`) + ` Writes go on for ${formatDuration(left)}…`);
    }
    if (readyAt !== undefined && Date.now() >= Math.max(workload.startedAt + durationMs, readyAt + WRITES_WHILE_READY_MS)) break;
    if (Date.now() - migrationStartedAt > READY_TIMEOUT_MS) {
      throw new DemoError(`the migration did not become READY_FOR_CUTOVER within ${formatDuration(READY_TIMEOUT_MS)} (phase ${phase ?? 'unknown'})`);
    }
    await sleep(100);
  }

  step(4, 'Stop the writes and cut over');
  await workload.stop();
  if (workload.failure) throw new DemoError(`the workload's write to the source failed: ${String(workload.failure)}`);
  const writesStoppedAt = Date.now();
  say(`writes to the source stopped after ${since(workload.startedAt)}: ${workload.describe()}`);
  // The applications (here: the workload) stopped writing, and --writes-stopped says so. Without
  // it the migrator blocks writes itself where the source can (setUserWriteBlockMode, MongoDB 6+);
  // the emulator cannot, nor can DocumentDB.
  const cutover = migrator('cutover', ['cutover', ...args, '--writes-stopped', '--wait', '--timeout', '2m']);
  const cutoverCode = await cutover.exited;
  if (cutoverCode !== 0) throw new DemoError(`migrator cutover ${cutover.ended} (its output is above)`, cutoverCode);
  const downtime = Date.now() - writesStoppedAt;
  const fullMigrateCode = await Promise.race([fullMigrate.exited, sleep(EXIT_TIMEOUT_MS).then(() => undefined)]);
  if (fullMigrateCode === undefined) throw new DemoError(`migrator full-migrate did not exit within ${formatDuration(EXIT_TIMEOUT_MS)} of the cutover`);
  if (fullMigrateCode !== 0) throw new DemoError(`migrator full-migrate ${fullMigrate.ended} (its output is above)`, fullMigrateCode);
  const migrationTook = Date.now() - migrationStartedAt;
  await status.stop();

  step(5, 'Verify: compare source and target document by document');
  const verify = migrator('verify', ['verify', ...args]);
  const verifyCode = await verify.exited;
  if (verifyCode === ExitCode.VERIFICATION_MISMATCH) throw new DemoError('migrator verify: source and target differ (the report is above)', verifyCode);
  if (verifyCode !== 0) throw new DemoError(`migrator verify ${verify.ended} (its output is above)`, verifyCode);

  // The final numbers: one more `migrator status --json`, and counts on both sides.
  const final = migrator('status', ['status', '--json', ...args], { quiet: true, onLine: () => undefined });
  if ((await final.exited) !== 0) throw new DemoError(`migrator status ${final.ended}:\n${final.lines.join('\n')}`, final.exitCode);
  const report = JSON.parse(final.lines.join('\n')) as StatusReport;
  const count = (client: MongoClient, db: string, coll: string) => client.db(db).collection(coll).countDocuments();

  say();
  say(bold('Summary'));
  for (const coll of ['products', 'orders']) {
    const [src, dst] = await Promise.all([count(source, 'bar', coll), count(target, 'bar_new', coll)]);
    say(`  ${`bar.${coll}`.padEnd(13)} ${fmt(src).padStart(7)} documents  →  ${`bar_new.${coll}`.padEnd(17)} ${fmt(dst).padStart(7)} documents`);
  }
  say(`  workload      ${workload.describe()}`);
  say(`  events        ${fmt(report.capture?.events ?? 0)} captured into Kinesis, ${fmt(report.apply.events)} applied to the target (over ${report.apply.shards} shards)`);
  say(`  time          ${formatDuration(migrationTook)} of migration; writes stopped ${formatDuration(downtime)} for the cutover; ${since(startedAt)} in all`);
  say(`  phase         ${green(report.phase)}`);
  if (report.phase !== 'COMPLETED') throw new DemoError(`the migration ended in phase ${report.phase}, not COMPLETED`);
  say();
  say(green('Done: bar was migrated to bar_new while it was being written to, then cut over and verified equal.'));
}

let code = 0;
try {
  await demo();
} catch (err) {
  if (shuttingDown) await new Promise(() => undefined); // interrupted: the signal handler exits
  code = err instanceof DemoError ? err.exitCode : 1;
  say();
  say(red(`demo FAILED: ${err instanceof Error ? err.message : String(err)}`));
  if (!(err instanceof DemoError) && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
}

const stack = startedStack;
if (argv.keep && stack) {
  codeOnSignal = code;
  say();
  say(bold('The stack keeps running (--keep); Ctrl-C stops it.'));
  say(`  source   ${stack.sourceUri}`);
  say(`  target   ${stack.targetUri}`);
  say(`  kinesis  ${stack.kinesisEndpoint}  (stream ${STREAM})`);
  say(dim(`  try: node --import tsx src/cli/main.ts status --target-uri '${stack.targetUri}' --migration-id ${MIGRATION_ID}`));
  await new Promise(() => undefined); // until SIGINT/SIGTERM
}
await shutdown(code);
