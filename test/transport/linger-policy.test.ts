/**
 * The adaptive linger (src/transport/linger-policy.ts): low record rates keep the floor (low
 * latency), a lane whose record rate nears the per-shard budget lingers longer, never beyond the
 * ceiling, and returns to the floor once its rate drops. Simulated clock; no timers.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LingerPolicy, resolveLingerOptions } from '../../src/transport/linger-policy.js';

/**
 * A lane fed with `eventsPerSecond` evenly spaced payloads for `seconds` s; it sends a record of
 * everything pending as soon as the policy lets it (in-memory Kinesis: acknowledged at once).
 * Returns the records sent, the busiest one-second window and the longest wait of a payload.
 */
function simulate(policy: LingerPolicy, eventsPerSecond: number, seconds: number, start = 0) {
  const gap = 1000 / eventsPerSecond;
  const sends: number[] = [];
  let oldest: number | undefined;
  let maxWait = 0;
  let nextEvent = start;
  const end = start + seconds * 1000;
  // 0.1 ms time steps
  for (let now = start; now < end; now += 0.1) {
    while (nextEvent <= now) {
      oldest ??= nextEvent;
      nextEvent += gap;
    }
    if (oldest !== undefined && policy.readyAt(oldest, now) <= now) {
      maxWait = Math.max(maxWait, now - oldest);
      policy.noteRecord(now);
      sends.push(now);
      oldest = undefined;
    }
  }
  let busiest = 0;
  for (let i = 0, j = 0; i < sends.length; i++) {
    while (sends[i]! - sends[j]! >= 1000) j++;
    busiest = Math.max(busiest, i - j + 1);
  }
  return { records: sends.length, busiest, maxWait };
}

describe('linger policy', () => {
  const opts = resolveLingerOptions({ floorMs: 5, maxMs: 250, recordsPerSecond: 50 });

  it('keeps the floor when the record rate is low: a lone payload waits the floor only', () => {
    const p = new LingerPolicy(opts, 0);
    assert.equal(p.lingerMs(0), 5);
    const r = simulate(p, 10, 5); // 10 events/s: one record each, each after the floor
    assert.equal(r.records, 50);
    assert.ok(r.maxWait <= 5.2, `waited ${r.maxWait} ms`);
  });

  it('bounds records per second per shard at 500, 5,000 and 50,000 events/s', () => {
    for (const rate of [500, 5_000, 50_000]) {
      const r = simulate(new LingerPolicy(opts, 0), rate, 5);
      // budget 50/s + the initial burst of 5
      assert.ok(r.busiest <= 55, `${rate} events/s: ${r.busiest} records in one second`);
      assert.ok(r.records <= 50 * 5 + 5, `${rate} events/s: ${r.records} records in 5 s`);
      assert.ok(r.maxWait <= 25, `${rate} events/s: a payload waited ${r.maxWait} ms`);
    }
  });

  it('the linger grows as the rate nears the budget and shrinks back to the floor when it drops', () => {
    const p = new LingerPolicy(opts, 0);
    simulate(p, 5_000, 2); // saturates the budget
    const busy = p.lingerMs(2000);
    assert.ok(busy > 5, `linger at the budget: ${busy} ms`);
    // quiet for a second: the bucket refills, the linger is the floor again
    assert.equal(p.lingerMs(3000), 5);
    const r = simulate(p, 10, 2, 3000);
    assert.ok(r.maxWait <= 5.2, `after the burst: waited ${r.maxWait} ms`);
  });

  it('never lingers beyond the ceiling, even after a burst of full records (debt)', () => {
    const p = new LingerPolicy(opts, 0);
    for (let i = 0; i < 1000; i++) p.noteRecord(0); // e.g. full records sent back to back
    assert.equal(p.tokensAt(0), -50, 'at most one second of debt');
    assert.equal(p.readyAt(0, 0), 250);
    assert.equal(p.lingerMs(0), 250);
    // the debt is paid back at the budget rate
    assert.equal(p.lingerMs(1020), 5);
  });

  it('rides along in another lane\'s call only with a token in hand', () => {
    const p = new LingerPolicy(resolveLingerOptions({ recordsPerSecond: 50, burst: 2 }), 0);
    assert.equal(p.mayRideAlong(0), true);
    p.noteRecord(0);
    p.noteRecord(0);
    assert.equal(p.mayRideAlong(0), false);
    assert.equal(p.mayRideAlong(20), true); // 20 ms at 50/s = one token
  });

  it('defaults: floor 5 ms, ceiling 250 ms, 50 records/s, a floor above the ceiling raises it', () => {
    assert.deepEqual(resolveLingerOptions(), { floorMs: 5, maxMs: 250, recordsPerSecond: 50, burst: 5 });
    assert.equal(resolveLingerOptions({ floorMs: 1000 }).maxMs, 1000);
    assert.throws(() => resolveLingerOptions({ recordsPerSecond: 0 }), /recordsPerSecond/);
  });
});
