// --metrics-port end to end on the local stack (issue #14): a full migration scraped while it runs
// (counters move, the apply-lag histogram fills, the exposition format parses), /healthz 200 while
// running, /readyz 200 for full-migrate and for the capture holding the capture lease and 503 for
// a standby capture, /status of the same shape as `migrator status --json`.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { type ResultPromise } from 'execa';
import type { Document } from 'mongodb';
import { useLocalStack } from '../support/local-stack.js';
import { goToolPath } from '../support/go-tools.js';
import { runMigrator } from '../support/cli.js';
import { freePort } from '../support/free-port.js';
import { startWorkload } from '../support/workload.js';
import { StateStore } from '../../src/state/store.js';
import { cutoverAndWait, spawnMigrator, stderrTail } from '../support/full-migrate-process.js';

type AnyDoc = Document & { _id: number | string };

interface Sample {
  labels: Record<string, string>;
  value: number;
}

/**
 * Parses the Prometheus text exposition format (0.0.4): `# HELP` / `# TYPE` lines, then samples
 * `name{label="value",…} number`. Every sample must belong to a declared family (a histogram's
 * _bucket/_sum/_count, a summary's quantiles, _sum and _count to theirs); anything else fails.
 */
function parseExposition(text: string): { types: Map<string, string>; samples: Map<string, Sample[]> } {
  const types = new Map<string, string>();
  const samples = new Map<string, Sample[]>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
      assert.ok(m, `bad comment line: ${line}`);
      if (m[1] === 'TYPE') {
        assert.match(m[3]!, /^(counter|gauge|histogram|summary|untyped)$/, line);
        types.set(m[2]!, m[3]!);
      }
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$/.exec(line);
    assert.ok(m, `bad sample line: ${line}`);
    const labels: Record<string, string> = {};
    const body = m[2] ?? '';
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/g;
    let consumed = 0;
    for (let l; (l = re.exec(body)); ) {
      labels[l[1]!] = l[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
      consumed = re.lastIndex;
    }
    assert.equal(consumed, body.length, `bad labels: ${line}`);
    const name = m[1]!;
    const family = types.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
    assert.ok(types.has(family), `sample of an undeclared metric: ${line}`);
    const value = Number(m[3]!.replace('+Inf', 'Infinity'));
    const list = samples.get(name) ?? [];
    list.push({ labels, value });
    samples.set(name, list);
  }
  return { types, samples };
}

const sum = (s: Map<string, Sample[]>, name: string, where: (l: Record<string, string>) => boolean = () => true) =>
  (s.get(name) ?? []).filter((x) => where(x.labels)).reduce((n, x) => n + x.value, 0);

async function get(port: number, path: string): Promise<{ code: number; text: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { code: res.status, text: await res.text() };
}

/** Polls until `fn` returns a value (or fails with the last reason); the process must stay up. */
async function eventually<T>(what: string, ms: number, proc: ResultPromise | undefined, fn: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  while (Date.now() < end) {
    if (proc && proc.exitCode !== null) throw new Error(`${what}: the process exited ${proc.exitCode}`);
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what}: not within ${ms} ms${last ? ` (${String(last)})` : ''}`);
}

/** The key structure of a JSON value (arrays by their first element): "same shape". */
function shape(v: unknown): unknown {
  if (Array.isArray(v)) return v.length ? [shape(v[0])] : [];
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, shape((v as Record<string, unknown>)[k])]));
  return v === null ? 'null' : typeof v;
}

/** Shapes may differ where a value is null in one and set in the other (a moment apart). */
function sameShape(a: unknown, b: unknown, path = '$'): void {
  if (a === 'null' || b === 'null') return;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return assert.equal(a, b, `at ${path}`);
  if (Array.isArray(a) || Array.isArray(b)) {
    assert.ok(Array.isArray(a) && Array.isArray(b), `at ${path}: array vs object`);
    if (a.length && b.length) sameShape(a[0], b[0], `${path}[0]`);
    return;
  }
  assert.deepEqual(Object.keys(a), Object.keys(b), `keys at ${path}`);
  for (const k of Object.keys(a)) sameShape((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}.${k}`);
}

const tail = async (p: ResultPromise) => {
  p.kill('SIGKILL');
  const r = await p;
  return stderrTail(r.stderr, 40);
};

describe('metrics and health endpoints (--metrics-port)', { timeout: 420_000 }, () => {
  const stack = useLocalStack();

  test('a full migration scraped while it runs: counters move, lag histogram filled, /healthz, /readyz, /status', { timeout: 360_000 }, async () => {
    const { source, target, kinesis, src, dst } = stack;
    const id = 'metrics-e2e';
    await src.db('bar').collection<AnyDoc>('products').insertMany(Array.from({ length: 2000 }, (_, i) => ({ _id: i, name: `p${i}`, price: i % 100, legacy: true })));
    const stream = kinesis.uniqueStreamName('metrics');
    await kinesis.createStream(stream, 2);
    const common = ['--source-uri', source.uri, '--target-uri', target.uri, '--kinesis-stream', stream, '--kinesis-endpoint', kinesis.endpoint, '--migration-id', id];
    const port = await freePort();
    const env = {
      MIGRATOR_MONGODUMP_PATH: goToolPath('mongodump'),
      MIGRATOR_MONGORESTORE_PATH: goToolPath('mongorestore'),
      MIGRATOR_DATA_DIR: `/tmp/migrator-metrics-e2e-${process.pid}`,
      // The environment variable the deployment examples use.
      MIGRATOR_METRICS_PORT: String(port),
    };
    const store = await StateStore.open({ client: dst });
    const workload = startWorkload(src, { pauseMs: 5 });
    let probe: NodeJS.Timeout | undefined;
    const proc = spawnMigrator(['full-migrate', ...common, '--include', 'bar.*', '--lease-ttl', '5s', '--metrics-host', '127.0.0.1', '--log-format', 'json',
      // Short enough to catch a loop that forgets to beat while it waits (the load counts as waiting).
      '--liveness-bound', '15s'], { env });
    try {
      // Live as soon as the server is up (during the connection and the load too).
      const health = await eventually('/healthz answers', 60_000, proc, async () => {
        const r = await get(port, '/healthz');
        return r.code === 200 ? (JSON.parse(r.text) as { status: string; loops: { name: string }[] }) : undefined;
      });
      assert.equal(health.status, 'ok');
      // A liveness probe every 500 ms for the whole run: never a 503 (the load and the cutover wait, the loops beat).
      const unhealthy: string[] = [];
      probe = setInterval(() => {
        get(port, '/healthz').then((r) => void (r.code !== 200 && unhealthy.push(r.text)), () => undefined);
      }, 500);

      await eventually('phase CATCHING_UP or READY_FOR_CUTOVER', 150_000, proc, async () => {
        const m = await store.getMigration(id);
        return m && ['CATCHING_UP', 'READY_FOR_CUTOVER'].includes(m.phase) ? true : undefined;
      });
      // Applied changes (the workload's, replayed from the resume point) fill the lag histogram.
      const first = await eventually('apply events and lag observations', 60_000, proc, async () => {
        const r = await get(port, '/metrics');
        const { samples } = parseExposition(r.text);
        return sum(samples, 'migrator_apply_lag_seconds_count') > 0 && sum(samples, 'migrator_apply_events_total') > 0 ? samples : undefined;
      });
      const captured1 = sum(first, 'migrator_capture_events_total');
      const applied1 = sum(first, 'migrator_apply_events_total');
      assert.ok(captured1 > 0, 'capture_events_total counts');
      assert.ok(sum(first, 'migrator_capture_events_total', (l) => l.op === 'insert') > 0, 'by operation type');
      assert.ok(sum(first, 'migrator_kinesis_calls_total', (l) => l.call === 'PutRecords') > 0);
      assert.ok(sum(first, 'migrator_kinesis_calls_total', (l) => l.call === 'GetRecords') > 0);
      assert.ok(sum(first, 'migrator_kinesis_bytes_total', (l) => l.direction === 'out') > 0);
      assert.ok(sum(first, 'migrator_kinesis_bytes_total', (l) => l.direction === 'in') > 0);
      assert.ok(sum(first, 'migrator_kinesis_events_per_record') >= 1);
      // 2000 seeded, plus the workload's inserts before mongodump read the collection.
      assert.ok(sum(first, 'migrator_load_documents_dumped', (l) => l.namespace === 'bar.products') >= 2000, 'load progress per collection');
      assert.equal(sum(first, 'migrator_load_collection_done', (l) => l.namespace === 'bar.products'), 1);
      const bytes = sum(first, 'migrator_load_bytes_expected', (l) => l.namespace === 'bar.products');
      assert.ok(bytes > 2000 * 20, `bytes of the collection (collStats): ${bytes}`);
      assert.equal(sum(first, 'migrator_load_bytes_dumped', (l) => l.namespace === 'bar.products'), bytes, 'all read once done');
      assert.equal(sum(first, 'migrator_load_eta_seconds'), 0, 'the load is over');
      assert.equal(sum(first, 'migrator_lease_held', (l) => l.kind === 'apply'), 2, 'one apply lease per shard');
      assert.equal(sum(first, 'migrator_lease_held', (l) => l.kind === 'capture' && l.shard === 'capture'), 1);
      assert.equal((first.get('migrator_kinesis_millis_behind_latest') ?? []).length, 2, 'per shard');
      const phases = (first.get('migrator_phase') ?? []).filter((x) => x.value === 1).map((x) => x.labels.phase);
      assert.equal(phases.length, 1);
      assert.ok(['CATCHING_UP', 'READY_FOR_CUTOVER'].includes(phases[0]!), String(phases));
      assert.equal(sum(first, 'migrator_cutover_state', (l) => l.state === 'none'), 1);
      assert.equal(sum(first, 'migrator_last_error_exit_code'), 0);
      assert.ok(first.has('migrator_process_cpu_seconds_total'), 'default process metrics, prefixed');
      assert.ok(first.has('migrator_nodejs_eventloop_lag_seconds'));
      assert.equal(sum(first, 'migrator_info', (l) => l.command === 'full-migrate' && l.migration_id === id), 1);
      for (const name of first.keys()) assert.match(name, /^migrator_/);

      // Counters move while the workload writes.
      const second = await eventually('counters moving', 60_000, proc, async () => {
        const { samples } = parseExposition((await get(port, '/metrics')).text);
        return sum(samples, 'migrator_capture_events_total') > captured1 && sum(samples, 'migrator_apply_events_total') > applied1 ? samples : undefined;
      });
      assert.ok(sum(second, 'migrator_apply_lag_seconds_count') >= sum(first, 'migrator_apply_lag_seconds_count'));

      let r = await get(port, '/healthz');
      assert.equal(r.code, 200, r.text);
      const live = JSON.parse(r.text) as { loops: { name: string; ok: boolean }[] };
      assert.deepEqual(live.loops.map((l) => l.name).sort(), ['apply', 'capture', 'migration']);
      r = await get(port, '/readyz');
      assert.equal(r.code, 200, r.text);
      const ready = JSON.parse(r.text) as { components: Record<string, { state: string }>; connections: Record<string, string> };
      assert.equal(ready.components.capture?.state, 'capturing');
      assert.equal(ready.components.apply?.state, 'applying');
      assert.deepEqual(ready.connections, { source: 'ok', target: 'ok', kinesis: 'ok' });

      // /status: the JSON of `migrator status --json`.
      r = await get(port, '/status');
      assert.equal(r.code, 200, r.text);
      const viaHttp = JSON.parse(r.text) as Record<string, unknown>;
      const cli = await runMigrator(['status', '--json', ...common], { env: {} });
      assert.equal(cli.exitCode, 0, cli.all);
      const viaCli = JSON.parse(cli.stdout) as Record<string, unknown>;
      sameShape(shape(viaHttp), shape(viaCli));
      assert.equal(viaHttp.migrationId, id);
      assert.equal(viaHttp.schemaVersion, viaCli.schemaVersion);

      await workload.stop();
      await eventually('READY_FOR_CUTOVER', 120_000, proc, async () => ((await store.getMigration(id))?.phase === 'READY_FOR_CUTOVER' ? true : undefined));
      await cutoverAndWait(common, { timeout: '120s', timeoutMs: 180_000 });
      const result = await proc;
      clearInterval(probe);
      assert.equal(result.exitCode, 0, String(result.stderr).slice(-3000));
      assert.deepEqual(unhealthy, [], 'no liveness failure during the migration');
    } catch (err) {
      clearInterval(probe);
      await workload.stop().catch(() => undefined);
      if (proc.exitCode === null) throw new Error(`${(err as Error).message}\n--- full-migrate stderr ---\n${await tail(proc)}`, { cause: err });
      throw err;
    }
    await assert.rejects(get(port, '/healthz'), 'the server closes with the process');
  });

  test('/readyz: 200 for the capture holding the lease, 503 for a standby, which takes over when the holder stops', { timeout: 240_000 }, async () => {
    const { source, target, kinesis } = stack;
    const id = 'metrics-standby';
    const stream = kinesis.uniqueStreamName('standby');
    await kinesis.createStream(stream, 1);
    const common = ['capture', '--cdc-only', '--source-uri', source.uri, '--target-uri', target.uri, '--kinesis-stream', stream, '--kinesis-endpoint', kinesis.endpoint, '--migration-id', id, '--lease-ttl', '3s', '--metrics-host', '127.0.0.1',
      // A short liveness bound: an idle capture and a standby must keep beating (no false "wedged").
      '--liveness-bound', '3s'];
    const [portA, portB] = [await freePort(), await freePort()];
    const a = spawnMigrator([...common, '--metrics-port', String(portA)]);
    let b: ResultPromise | undefined;
    try {
      await eventually('capture A ready', 60_000, a, async () => ((await get(portA, '/readyz')).code === 200 ? true : undefined));
      b = spawnMigrator([...common, '--metrics-port', String(portB)]);
      const standby = await eventually('capture B answers', 60_000, b, async () => {
        const r = await get(portB, '/readyz');
        const body = JSON.parse(r.text) as { status: string; reason?: string; components: Record<string, { state: string }> };
        return body.components.capture?.state === 'standby' ? { code: r.code, body } : undefined;
      });
      assert.equal(standby.code, 503);
      assert.match(standby.body.reason!, /capture: standby/);
      await new Promise((r) => setTimeout(r, 4_000)); // longer than the liveness bound, the stream idle
      assert.equal((await get(portA, '/healthz')).code, 200, 'an idle capture is live');
      assert.equal((await get(portB, '/healthz')).code, 200, 'a standby is live');
      const mb = parseExposition((await get(portB, '/metrics')).text).samples;
      assert.equal(sum(mb, 'migrator_leases_held', (l) => l.kind === 'capture'), 0);
      assert.equal(sum(mb, 'migrator_ready'), 0);
      const ma = parseExposition((await get(portA, '/metrics')).text).samples;
      assert.equal(sum(ma, 'migrator_lease_held', (l) => l.kind === 'capture'), 1);
      assert.equal(sum(ma, 'migrator_ready'), 1);
      assert.equal((await get(portA, '/readyz')).code, 200);

      // The holder stops (releasing the lease): the standby takes over and becomes ready.
      a.kill('SIGTERM');
      assert.equal((await a).exitCode, 0);
      await eventually('capture B ready after the take-over', 60_000, b, async () => ((await get(portB, '/readyz')).code === 200 ? true : undefined));
      b.kill('SIGTERM');
      assert.equal((await b).exitCode, 0);
    } finally {
      if (a.exitCode === null) a.kill('SIGKILL');
      if (b && b.exitCode === null) b.kill('SIGKILL');
    }
  });

  test('/readyz of apply: 200 while holding a shard lease, 503 for a standby and while waiting for the initial load', { timeout: 240_000 }, async () => {
    const { target, kinesis } = stack;
    const stream = kinesis.uniqueStreamName('apply-standby');
    await kinesis.createStream(stream, 1);
    const common = ['apply', '--target-uri', target.uri, '--kinesis-stream', stream, '--kinesis-endpoint', kinesis.endpoint, '--lease-ttl', '3s', '--metrics-host', '127.0.0.1', '--liveness-bound', '3s'];
    const [portA, portB, portC] = [await freePort(), await freePort(), await freePort()];
    const a = spawnMigrator([...common, '--cdc-only', '--migration-id', 'metrics-apply', '--metrics-port', String(portA)]);
    // No --cdc-only and no migration of that id: it waits for full-migrate to create it and load.
    const c = spawnMigrator([...common, '--migration-id', 'metrics-apply-unloaded', '--metrics-port', String(portC)]);
    let b: ResultPromise | undefined;
    const readyz = async (port: number) => {
      const r = await get(port, '/readyz');
      return { code: r.code, body: JSON.parse(r.text) as { reason?: string; components: Record<string, { state: string }> } };
    };
    try {
      await eventually('apply A ready', 60_000, a, async () => ((await readyz(portA)).code === 200 ? true : undefined));
      assert.equal((await readyz(portA)).body.components.apply?.state, 'applying');
      b = spawnMigrator([...common, '--cdc-only', '--migration-id', 'metrics-apply', '--metrics-port', String(portB)]);
      const standby = await eventually('apply B standing by', 60_000, b, async () => {
        const r = await readyz(portB);
        return r.body.components.apply?.state === 'standby' ? r : undefined;
      });
      assert.equal(standby.code, 503);
      assert.match(standby.body.reason!, /apply: standby \(holds no shard lease/);
      const waiting = await eventually('apply C waiting for the load', 60_000, c, async () => {
        const r = await readyz(portC);
        return r.body.components.apply?.state === 'waiting-for-initial-load' ? r : undefined;
      });
      assert.equal(waiting.code, 503);
      await new Promise((r) => setTimeout(r, 4_000)); // longer than the liveness bound, nothing to apply
      for (const port of [portA, portB, portC]) assert.equal((await get(port, '/healthz')).code, 200, `all three are live (${port})`);
      const mb = parseExposition((await get(portB, '/metrics')).text).samples;
      assert.equal(sum(mb, 'migrator_leases_held', (l) => l.kind === 'apply'), 0);
      const ma = parseExposition((await get(portA, '/metrics')).text).samples;
      assert.equal(sum(ma, 'migrator_leases_held', (l) => l.kind === 'apply'), 1);
    } finally {
      for (const p of [a, b, c]) if (p && p.exitCode === null) p.kill('SIGTERM');
      await Promise.all([a, b, c].filter(Boolean));
    }
  });

  test('/healthz 503 (wedged) once a main loop stops progressing: apply on a Kinesis endpoint that never answers', { timeout: 120_000 }, async () => {
    const { target } = stack;
    // Accepts connections and never answers: every Kinesis call hangs (the SDK has no request timeout by default).
    const sockets = new Set<Socket>();
    const silent = createServer((s) => void sockets.add(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const endpoint = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const port = await freePort();
    const p = spawnMigrator(
      ['apply', '--cdc-only', '--target-uri', target.uri, '--kinesis-stream', 'never', '--kinesis-endpoint', endpoint, '--migration-id', 'metrics-wedged',
        '--metrics-port', String(port), '--metrics-host', '127.0.0.1', '--liveness-bound', '3s'],
    );
    try {
      const wedged = await eventually('/healthz 503', 60_000, p, async () => {
        const r = await get(port, '/healthz');
        return r.code === 503 ? (JSON.parse(r.text) as { status: string; reason: string; loops: { name: string; ok: boolean }[] }) : undefined;
      });
      assert.equal(wedged.status, 'wedged');
      assert.match(wedged.reason, /apply made no progress for \d+ s \(bound 3 s\): wedged/);
      assert.equal(wedged.loops.find((l) => l.name === 'apply')?.ok, false);
      assert.equal((await get(port, '/readyz')).code, 503, 'not ready either');
      const m = parseExposition((await get(port, '/metrics')).text).samples;
      assert.ok(sum(m, 'migrator_heartbeat_age_seconds', (l) => l.loop === 'apply') > 3);
    } finally {
      p.kill('SIGKILL');
      await p;
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });
});
