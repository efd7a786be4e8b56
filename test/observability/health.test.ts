// Liveness and readiness logic of --metrics-port (src/observability/health.ts) and its HTTP answers
// (src/observability/server.ts): a main loop whose heartbeat stops for longer than its bound is
// wedged (/healthz 503 with a JSON reason), a loop waiting on a long step is not, and /readyz
// follows the gating components.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { HealthRegistry } from '../../src/observability/health.js';
import { StatusCache, startObservabilityServer } from '../../src/observability/server.js';
import type { StateStore } from '../../src/state/store.js';

function clock(start = 1_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => void (now += ms) };
}

describe('liveness heartbeats', () => {
  test('a loop that beats stays live; one silent for longer than its bound is wedged, and live again once it beats', () => {
    const c = clock();
    const h = new HealthRegistry(c.now);
    const hb = h.register('capture', 10_000);
    assert.equal(h.liveness().ok, true);
    for (let i = 0; i < 5; i++) {
      c.advance(9_000);
      hb.beat();
      assert.equal(h.liveness().ok, true, `after beat ${i}`);
    }
    c.advance(10_000);
    assert.equal(h.liveness().ok, true, 'exactly at the bound is still live');
    c.advance(1);
    const l = h.liveness();
    assert.equal(l.ok, false);
    assert.match(l.reason!, /capture made no progress for 10 s \(bound 10 s\): wedged/);
    assert.equal(l.loops[0]!.name, 'capture');
    hb.beat();
    assert.equal(h.liveness().ok, true);
  });

  test('a change between two samples counts at the later sample, so sampling late never reports a wedge early', () => {
    const c = clock();
    const h = new HealthRegistry(c.now);
    const hb = h.register('apply', 10_000);
    c.advance(8_000);
    hb.beat();
    c.advance(8_000); // 16 s after registration, 8 s after the beat: sampled now, counted now
    assert.equal(h.liveness().ok, true);
    c.advance(9_000);
    assert.equal(h.liveness().ok, true);
    c.advance(2_000);
    assert.equal(h.liveness().ok, false);
  });

  test('a long step run inside during() is a wait, not a wedge; the bound restarts after it', async () => {
    const c = clock();
    const h = new HealthRegistry(c.now);
    const hb = h.register('migration', 10_000);
    let finish!: () => void;
    const step = hb.during('initial load', new Promise<void>((r) => (finish = r)));
    c.advance(60 * 60_000);
    const l = h.liveness();
    assert.equal(l.ok, true);
    assert.equal(l.loops[0]!.waitingFor, 'initial load');
    finish();
    await step;
    assert.equal(h.liveness().ok, true); // sampled when the step ends (the server samples every second)
    c.advance(9_000);
    assert.equal(h.liveness().ok, true);
    c.advance(2_000);
    assert.equal(h.liveness().ok, false);
  });

  test('progress counted elsewhere (GetRecords calls) keeps a loop live', () => {
    const c = clock();
    const h = new HealthRegistry(c.now);
    let calls = 0;
    h.register('apply', 10_000, () => calls);
    c.advance(9_000);
    calls++;
    assert.equal(h.liveness().ok, true);
    c.advance(9_000);
    assert.equal(h.liveness().ok, true);
    c.advance(2_000);
    assert.equal(h.liveness().ok, false);
  });

  test('an unregistered loop no longer counts', () => {
    const c = clock();
    const h = new HealthRegistry(c.now);
    const hb = h.register('capture', 1_000);
    c.advance(5_000);
    assert.equal(h.liveness().ok, false);
    h.unregister(hb);
    assert.equal(h.liveness().ok, true);
  });
});

describe('readiness components', () => {
  test('ready when every gating component is; the reason names the others', () => {
    const h = new HealthRegistry();
    let held = 0;
    h.component('apply', () => (held > 0 ? { ready: true, state: 'applying' } : { ready: false, state: 'standby', detail: 'holds no shard lease' }));
    h.component('capture', () => ({ ready: false, state: 'standby' }));
    let r = h.readiness(['apply']);
    assert.equal(r.ok, false);
    assert.equal(r.reason, 'apply: standby (holds no shard lease)');
    assert.equal(r.components.capture!.state, 'standby', 'non-gating components are reported too');
    held = 1;
    r = h.readiness(['apply']);
    assert.equal(r.ok, true);
    assert.equal(h.readiness(['migration']).reason, 'migration: not started');
  });

  test('removing a component takes it out of the report', () => {
    const h = new HealthRegistry();
    const drop = h.component('capture', () => ({ ready: true, state: 'capturing' }));
    assert.ok(h.readiness().components.capture);
    drop();
    assert.equal(h.readiness().components.capture, undefined);
  });
});

describe('/healthz and /readyz over HTTP', () => {
  test('200 while live and ready, 503 with a JSON reason when wedged or not ready', async () => {
    const c = clock(Date.now());
    const h = new HealthRegistry(c.now);
    const hb = h.register('capture', 10_000);
    let state = 'standby';
    h.component('capture', () => ({ ready: state === 'capturing', state }));
    const server = await startObservabilityServer({ host: '127.0.0.1', port: 0, registry: new Registry(), health: h, gating: ['capture'], status: new StatusCache() });
    try {
      const get = async (path: string) => {
        const res = await fetch(`http://127.0.0.1:${server.port}${path}`);
        return { code: res.status, type: res.headers.get('content-type'), body: (await res.json()) as Record<string, unknown> };
      };
      let r = await get('/healthz');
      assert.equal(r.code, 200);
      assert.equal(r.body.status, 'ok');
      assert.match(String(r.type), /application\/json/);

      r = await get('/readyz');
      assert.equal(r.code, 503);
      assert.equal(r.body.status, 'not-ready');
      assert.equal(r.body.reason, 'capture: standby');
      state = 'capturing';
      r = await get('/readyz');
      assert.equal(r.code, 200, JSON.stringify(r.body));

      c.advance(10_001);
      r = await get('/healthz');
      assert.equal(r.code, 503);
      assert.equal(r.body.status, 'wedged');
      assert.match(String(r.body.reason), /capture made no progress .* wedged/);
      hb.beat();
      assert.equal((await get('/healthz')).code, 200);

      r = await get('/status');
      assert.equal(r.code, 503, 'no state store yet');
      assert.equal((await get('/nope')).code, 404);
    } finally {
      await server.close();
    }
  });
});

describe('status cache', () => {
  /** A state store holding one migration; `hang` makes every read wait forever. */
  function fakeStore() {
    const state = { reads: 0, hang: false };
    const answer = <T>(v: T) => (state.hang ? new Promise<T>(() => undefined) : Promise.resolve(v));
    const store = {
      getMigration: (id: string) => {
        state.reads++;
        return answer({ _id: id, phase: 'CATCHING_UP', createdAt: new Date(), updatedAt: new Date(), phaseChangedAt: new Date() });
      },
      getCaptureCheckpoint: () => answer(null),
      listShards: () => answer([]),
      getCutover: () => answer(null),
      getCaptureLease: () => answer(null),
      listMigrations: () => answer([]),
      listTtlHolds: () => answer([]),
    };
    return { state, store: store as unknown as StateStore };
  }

  test('reads the state store at most once per bound, however often it is asked', async () => {
    const { state, store } = fakeStore();
    const cache = new StatusCache(60_000);
    cache.use(store, 'm');
    const reports = await Promise.all([cache.report(), cache.report(), cache.report()]);
    assert.equal(reports[0]?.phase, 'CATCHING_UP');
    await cache.report();
    assert.equal(state.reads, 1);
  });

  test('a state store that does not answer: a scrape gets the last report within its wait, not after the store\'s retries', async () => {
    const { state, store } = fakeStore();
    const cache = new StatusCache(0);
    cache.use(store, 'm');
    assert.equal((await cache.report())?.phase, 'CATCHING_UP');
    state.hang = true;
    const started = Date.now();
    const r = await cache.report(100);
    assert.equal(r?.phase, 'CATCHING_UP', 'the last report');
    assert.ok(Date.now() - started < 5_000);
  });
});
