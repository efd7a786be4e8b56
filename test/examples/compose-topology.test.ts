/**
 * examples/compose/docker-compose.yml, run as `docker compose --profile local up` would run it, but
 * as processes on this machine (the chaos suite's way: test/chaos/supervisor.ts restarts a process
 * that exits non-zero, as `restart: on-failure` / `unless-stopped` do):
 *
 *  - every service's arguments are its `command:`, and its environment is the image's ENV
 *    (Dockerfile) plus the service's `environment:` interpolated from .env.example, as Compose does;
 *  - what differs from containers is only what a container gives for free: each service's /data is
 *    its own temporary directory, mongodump/mongorestore come from .tools/bin on PATH, the metrics
 *    port (one port per container there) is a free port per process here, and the service name
 *    `local-stack` resolves to 127.0.0.1, where local-stack.ts forwards free ports;
 *  - the dataset is tiny (LOCAL_STACK_PRODUCTS), so the whole run stays short.
 *
 * Order as depends_on and examples/README.md say: local-stack (healthy), then full-migrate, apply and
 * capture together; demo-writes; then the documented cutover, `docker compose run --rm cutover`,
 * with the extra apply still running (it may hold some of the shards, or all of them: full-migrate
 * judges those by what it publishes). Done when the cutover exits 0, full-migrate exits 0
 * (COMPLETED), apply and capture exit 0 by themselves after COMPLETED (so `restart: on-failure`
 * leaves them stopped, as the supervisor here does), and target equals source.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import { EJSON } from 'bson';
import { MongoClient, type Document } from 'mongodb';
import { Supervised } from '../chaos/supervisor.js';
import { PROJECT_ROOT } from '../support/cli.js';
import { GO_TOOLS_BIN, ensureGoTools } from '../support/go-tools.js';
import { freePort } from '../support/free-port.js';
import { parseOnly } from '../../src/cli/run.js';
import { COMPOSE_DIR, composeEnv, imageEnv, loadCompose, readDotEnv, type Any } from './example-files.js';

const STACK_SCRIPT = join(PROJECT_ROOT, 'examples', 'compose', 'local-stack', 'local-stack.ts');
const PRODUCTS = 200;

/** Documents of a collection as canonical EJSON (keys sorted), keyed by canonical _id. */
async function snapshot(client: MongoClient, db: string, coll: string): Promise<Map<string, string>> {
  const sortKeys = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sortKeys);
    if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Document)[k])]));
    return v;
  };
  const out = new Map<string, string>();
  for (const d of await client.db(db).collection(coll).find({}).toArray()) {
    const canonical = EJSON.serialize(d, { relaxed: false });
    out.set(JSON.stringify(canonical._id), JSON.stringify(sortKeys(canonical)));
  }
  return out;
}

/** `promise`, or a failure naming `what` and its details once `ms` passed (a hang says where it hung). */
async function within<T>(promise: Promise<T>, ms: number, what: string, details: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_r, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms / 1000} s\n${details()}`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** The metrics flags exist once the metrics work (issue 14 items 1-2) is in; then healthchecks are run too. */
function cliHasMetrics(): boolean {
  try {
    parseOnly(['apply', '--metrics-port', '1']);
    return true;
  } catch {
    return false;
  }
}

describe('examples: the Compose topology runs on the local stack (docker compose --profile local up, as processes)', () => {
  const dirs: string[] = [];
  const tmp = (name: string) => {
    const d = mkdtempSync(join(tmpdir(), `migrator-compose-${name}-`));
    dirs.push(d);
    return d;
  };
  let stack: ResultPromise | undefined;
  const supervised: Supervised[] = [];
  after(async () => {
    // On a failure or timeout, what each process said when it last exited by itself.
    for (const s of supervised) if (s.exitTails.length) console.log(`${s.name}: ${s.exitTails.slice(-3).join('\n')}`);
    const ends = await Promise.all(supervised.map((s) => s.stop('SIGKILL')));
    if (process.env.EXAMPLES_DEBUG) ends.forEach((e, i) => console.log(`${supervised[i]!.name} last stderr: ${String(e?.stderr).slice(-3000)}`));
    stack?.kill('SIGTERM');
    await stack?.catch(() => undefined);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test('full-migrate + apply + standby capture, demo writes, cutover: COMPLETED and target equals source', { timeout: Number(process.env.EXAMPLES_TIMEOUT_MS ?? 600_000) }, async () => {
    await ensureGoTools(['mongodump', 'mongorestore']);
    const dotenv = readDotEnv(join(COMPOSE_DIR, '.env.example'));
    const services = loadCompose(dotenv).services as Record<string, Any>;
    const base: Record<string, string> = { PATH: `${GO_TOOLS_BIN}:${process.env.PATH}`, HOME: process.env.HOME ?? tmpdir(), CI: 'true' };

    // local-stack: the service's environment; its ports on loopback, free ones, and a smaller seed.
    const readyFile = join(tmp('stack'), 'ready');
    const stackEnv = {
      ...base,
      ...composeEnv(services['local-stack']),
      LOCAL_STACK_HOST: '127.0.0.1',
      LOCAL_STACK_SOURCE_PORT: '0',
      LOCAL_STACK_TARGET_PORT: '0',
      LOCAL_STACK_KINESIS_PORT: '0',
      LOCAL_STACK_PRODUCTS: String(PRODUCTS),
      LOCAL_STACK_READY_FILE: readyFile,
    };
    stack = execa(process.execPath, ['--import', 'tsx', STACK_SCRIPT, ...services['local-stack'].command], {
      cwd: PROJECT_ROOT,
      env: stackEnv,
      extendEnv: false,
      stdin: 'ignore',
      buffer: false,
      reject: false,
    });
    let stackErr = '';
    const stackReady = new Promise<{ sourcePort: number; targetPort: number; kinesisPort: number }>((resolve, reject) => {
      let out = '';
      stack!.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        const line = out.split('\n').find((l) => l.startsWith('{'));
        if (line && out.includes('}\n')) resolve(JSON.parse(line));
      });
      stack!.stderr!.on('data', (c: Buffer) => (stackErr += c.toString()));
      void stack!.then((r) => reject(new Error(`local-stack exited ${r.exitCode}: ${stackErr.slice(-2000)}`)));
    });
    const ports = await within(stackReady, 180_000, 'local-stack ready', () => stackErr.slice(-2000));
    // The service name resolves to the stack's forwarded ports, as on the Compose network.
    const network: Record<string, string> = {
      'local-stack:27017': `127.0.0.1:${ports.sourcePort}`,
      'local-stack:27018': `127.0.0.1:${ports.targetPort}`,
      'local-stack:4567': `127.0.0.1:${ports.kinesisPort}`,
    };
    const resolveHosts = (env: Record<string, string>) =>
      Object.fromEntries(Object.entries(env).map(([k, v]) => [k, Object.entries(network).reduce((s, [from, to]) => s.split(from).join(to), v)]));
    for (const uri of [dotenv.MIGRATOR_SOURCE_URI, dotenv.MIGRATOR_TARGET_URI, dotenv.MIGRATOR_KINESIS_ENDPOINT]) {
      assert.ok(Object.keys(network).some((h) => uri!.includes(h)), `.env.example points at the local stack: ${uri}`);
    }

    // The migrator containers: image ENV + service environment; /data and the metrics port per process.
    const image = imageEnv();
    assert.equal(image.MIGRATOR_DATA_DIR, '/data', 'the image keeps its data under /data');
    const metricsPorts: Record<string, number> = {};
    const container = async (name: string): Promise<Record<string, string>> => {
      const env = resolveHosts({ ...image, ...composeEnv(services[name]) });
      metricsPorts[name] = await freePort();
      return { ...base, ...env, MIGRATOR_DATA_DIR: tmp(name), MIGRATOR_METRICS_PORT: String(metricsPorts[name]) };
    };
    const start = async (name: string) => {
      const s = new Supervised(name, services[name].command, 1000, await container(name));
      supervised.push(s);
      s.start();
      return s;
    };
    const fullMigrate = await start('full-migrate');
    const apply = await start('apply');
    const capture = await start('capture');

    const src = new MongoClient(`mongodb://127.0.0.1:${ports.sourcePort}/?directConnection=true`);
    const dst = new MongoClient(`mongodb://127.0.0.1:${ports.targetPort}/?directConnection=true`);
    try {
      // demo-writes: runs once the migration started, exits 0.
      const writesEnv = { ...base, ...resolveHosts(composeEnv(services['demo-writes'])) };
      const writes = await execa(process.execPath, ['--import', 'tsx', STACK_SCRIPT, ...services['demo-writes'].command], {
        cwd: PROJECT_ROOT,
        env: writesEnv,
        extendEnv: false,
        stdin: 'ignore',
        reject: false,
        timeout: 240_000,
      });
      assert.equal(writes.exitCode, 0, `demo-writes: ${String(writes.stderr).slice(-2000)}\n${fullMigrate.exitTails.join('\n')}`);

      if (cliHasMetrics()) {
        // Each service's own healthcheck command, against its process's metrics port.
        for (const name of ['full-migrate', 'apply', 'capture']) {
          const [form, cmd, ...args] = services[name].healthcheck.test as string[];
          assert.equal(form, 'CMD');
          const probeArgs = args.map((a) => a.split(':9464/').join(`:${metricsPorts[name]}/`));
          let ok = false;
          for (let i = 0; i < 20 && !ok; i++) {
            const r = await execa(cmd === 'node' ? process.execPath : cmd!, probeArgs, { reject: false, timeout: 10_000 });
            ok = r.exitCode === 0;
            if (!ok) await sleep(1000);
          }
          if (!ok) {
            const url = `http://127.0.0.1:${metricsPorts[name]}/healthz`;
            const answer = await fetch(url).then(async (r) => `${r.status} ${await r.text()}`, (e: unknown) => String(e));
            assert.fail(`${name}: its Compose healthcheck fails: ${url} answers ${answer.slice(0, 500)}`);
          }
        }
      } else {
        console.log('note: this build has no --metrics-port yet: the Compose healthchecks are not exercised (examples.test.ts fails on it)');
      }

      // The documented cutover (examples/README.md): `docker compose run --rm cutover`, run again
      // while it exits 10 (the load still running), with the extra apply and the standby capture
      // still running.
      for (const s of [apply, capture]) {
        assert.ok(s.running && s.exits.size === 0, `${s.name} runs, and never exited by itself before the cutover: ${s.exitTails.join('\n')}`);
      }
      if (cliHasMetrics()) {
        // For the log: whether the extra apply holds shards now (its /readyz is 200 only then).
        const ready = await fetch(`http://127.0.0.1:${metricsPorts.apply}/readyz`).then(async (r) => `${r.status} ${await r.text()}`, (e: unknown) => String(e));
        console.log(`apply /readyz when the cutover is requested: ${ready.replace(/\s+/g, ' ').slice(0, 300)}`);
      }
      const cutover = await start('cutover');
      const tails = () => supervised.map((x) => `${x.name}: ${x.exitTails.slice(-3).join('\n')}`).join('\n');
      const cut = await within(cutover.finished(), 240_000, 'cutover exits 0', tails);
      assert.equal(cut?.exitCode, 0, `cutover: ${String(cut?.stderr).slice(-2000)}\n${cutover.exitTails.join('\n')}`);
      const done = await within(fullMigrate.finished(), 120_000, 'full-migrate exits 0 after the cutover', tails);
      assert.equal(done?.exitCode, 0, `full-migrate ends 0 after COMPLETED: ${String(done?.stderr).slice(-2000)}\n${fullMigrate.exitTails.join('\n')}`);
      // The extra apply and the standby capture exit 0 by themselves once the migration is
      // COMPLETED (they read its phase every 2 s), each saying why.
      for (const [s, why] of [[apply, /nothing is left to apply/], [capture, /nothing is left to capture/]] as const) {
        const end = await within(s.finished(), 90_000, `${s.name} exits 0 by itself after COMPLETED`, tails);
        assert.equal(end?.exitCode, 0, `${s.name}: ${String(end?.stderr).slice(-1500)}`);
        assert.deepEqual([...s.exits.keys()], [0], `${s.name} exited by itself only then, with 0: ${s.exitTails.join('\n')}`);
        assert.match(String(end?.stderr), why);
      }
      assert.ok(![...fullMigrate.exits.keys()].some((c) => c !== 0), `full-migrate exited only at the end: ${fullMigrate.exitTails.join('\n')}`);

      // Target equals source (bar → bar_new, MIGRATOR_MAP in .env.example), with the demo's changes.
      assert.equal(dotenv.MIGRATOR_MAP, 'bar:bar_new');
      for (const coll of ['products', 'orders']) {
        const want = await snapshot(src, 'bar', coll);
        const got = await snapshot(dst, 'bar_new', coll);
        const missing = [...want.keys()].filter((k) => !got.has(k));
        const extra = [...got.keys()].filter((k) => !want.has(k));
        const differ = [...want.keys()].filter((k) => got.has(k) && got.get(k) !== want.get(k));
        assert.deepEqual({ missing: missing.slice(0, 5), extra: extra.slice(0, 5), differ: differ.slice(0, 5) }, { missing: [], extra: [], differ: [] }, `bar.${coll}: ${missing.length} missing, ${extra.length} extra, ${differ.length} differ`);
        assert.ok(want.size > 0, `bar.${coll} is not empty`);
      }
      const products = dst.db('bar_new').collection<{ _id: number | string; reviews?: unknown }>('products');
      assert.ok((await products.countDocuments({ reviews: { $exists: true } })) > 0, 'the demo updates (reviews) reached the target');
      assert.ok((await products.countDocuments({ _id: { $gte: 1_000_000 } })) > 0, 'the demo inserts reached the target');
      assert.ok((await products.countDocuments({})) < PRODUCTS + 100, 'the demo deletes reached the target');
    } finally {
      await Promise.all([src.close(), dst.close()]);
    }
  });
});
