// The registry of --metrics-port (src/observability/metrics.ts) on hand-set pipeline counters: values
// are collected at scrape time from the plain counters and the live objects, counters stay counters
// across scrapes, labels are the bounded ones, and the status-derived gauges follow the report.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HealthRegistry } from '../../src/observability/health.js';
import { createMetricsRegistry } from '../../src/observability/metrics.js';
import { observeApplyLag } from '../../src/observability/stats.js';
import { addOp, noteLoadProgress, stats } from '../../src/observability/stats.js';
import type { StatusReport } from '../../src/orchestration/status-report.js';

function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('metrics registry', () => {
  test('counters, live gauges and status gauges, collected when scraped', async () => {
    const current: { report?: Partial<StatusReport> } = {};
    const registry = createMetricsRegistry({
      command: 'apply',
      migrationId: 'm1',
      version: '0.0.0',
      health: new HealthRegistry(),
      gating: ['apply'],
      status: async () => current.report as StatusReport | undefined,
    });
    const before = stats.capture.events.insert ?? 0;
    addOp(stats.capture.events, 'insert', 3);
    stats.kinesis.putRecordsCalls += 2;
    let text = await registry.metrics();
    assert.equal(value(text, 'migrator_capture_events_total{op="insert"}'), before + 3);
    assert.ok((value(text, 'migrator_kinesis_calls_total{call="PutRecords"}') ?? 0) >= 2);
    assert.equal(value(text, 'migrator_info{command="apply",migration_id="m1",version="0.0.0"}'), 1);
    assert.equal(text.includes('migrator_phase{'), false, 'no phase before a status report exists');
    assert.match(text, /^# TYPE migrator_capture_events_total counter$/m);

    addOp(stats.capture.events, 'insert', 2);
    text = await registry.metrics();
    assert.equal(value(text, 'migrator_capture_events_total{op="insert"}'), before + 5, 'a counter keeps its total across scrapes');

    // Live objects: leases and shards as they are at scrape time.
    const holder = { kind: 'apply' as const, heldShards: () => ['shardId-000000000001'] };
    const apply = { shards: () => [{ shardId: 'shardId-000000000001', millisBehindLatest: 1500, caughtUp: false, stalled: false }], caughtUp: () => false };
    stats.live.leaseHolders.add(holder);
    stats.live.applies.add(apply);
    try {
      observeApplyLag(0.3);
      text = await registry.metrics();
      assert.equal(value(text, 'migrator_lease_held{kind="apply",shard="shardId-000000000001"}'), 1);
      assert.equal(value(text, 'migrator_leases_held{kind="apply"}'), 1);
      assert.equal(value(text, 'migrator_kinesis_millis_behind_latest{shard="shardId-000000000001"}'), 1500);
      assert.equal(value(text, 'migrator_apply_current_lag_seconds'), 0.3);
      assert.ok((value(text, 'migrator_apply_lag_seconds_count') ?? 0) >= 1);
      assert.ok((value(text, 'migrator_apply_lag_seconds_bucket{le="0.5"}') ?? 0) >= 1);
    } finally {
      stats.live.leaseHolders.delete(holder);
      stats.live.applies.delete(apply);
    }
    text = await registry.metrics();
    assert.equal(value(text, 'migrator_lease_held{kind="apply",shard="shardId-000000000001"}'), undefined, 'a lease given up disappears');

    // The status report (phase, cutover, last error).
    current.report = { phase: 'READY_FOR_CUTOVER', canCutover: true, cutover: null, lastError: { message: 'x', at: null, phase: 'CATCHING_UP', exitCode: 12 }, lag: { events: 4, seconds: 1.5, basis: 'wallTime' } };
    text = await registry.metrics();
    assert.equal(value(text, 'migrator_phase{phase="READY_FOR_CUTOVER"}'), 1);
    assert.equal(value(text, 'migrator_phase{phase="CATCHING_UP"}'), 0);
    assert.equal(value(text, 'migrator_can_cutover'), 1);
    assert.equal(value(text, 'migrator_cutover_state{state="none"}'), 1);
    assert.equal(value(text, 'migrator_last_error_exit_code'), 12);
    assert.equal(value(text, 'migrator_migration_lag_events'), 4);
    assert.equal(value(text, 'migrator_migration_lag_seconds'), 1.5);
  });

  test('load progress per namespace and the ETA', async () => {
    const registry = createMetricsRegistry({ command: 'full-migrate', migrationId: 'm2', version: '0', health: new HealthRegistry(), gating: [], status: async () => undefined });
    stats.load.collections.clear();
    stats.load.startedAtMs = Date.now() - 10_000;
    noteLoadProgress('shop.orders', { total: 1000, dumped: 250 });
    let text = await registry.metrics();
    assert.equal(value(text, 'migrator_load_documents_expected{namespace="shop.orders"}'), 1000);
    assert.equal(value(text, 'migrator_load_documents_dumped{namespace="shop.orders"}'), 250);
    const eta = value(text, 'migrator_load_eta_seconds')!;
    assert.ok(eta > 25 && eta < 40, `250 of 1000 in 10 s: about 30 s left (got ${eta})`);
    noteLoadProgress('shop.orders', { dumped: 1000, restored: 1000, done: true });
    text = await registry.metrics();
    assert.equal(value(text, 'migrator_load_collection_done{namespace="shop.orders"}'), 1);
    assert.equal(value(text, 'migrator_load_eta_seconds'), 0);
    stats.load.collections.clear();
    stats.load.startedAtMs = 0;
  });
});
