import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoffDelay, retry, sleep } from '../../src/util/retry.js';

const transient = Object.assign(new Error('try again'), { transient: true });
const isRetryable = (e: unknown) => (e as { transient?: boolean }).transient === true;

describe('util/retry', () => {
  it('backs off exponentially with equal jitter, capped', () => {
    assert.equal(backoffDelay(0, { baseMs: 100, maxMs: 1000 }, () => 0), 50);
    assert.equal(backoffDelay(0, { baseMs: 100, maxMs: 1000 }, () => 1), 100);
    assert.equal(backoffDelay(3, { baseMs: 100, maxMs: 1000 }, () => 1), 800);
    assert.equal(backoffDelay(9, { baseMs: 100, maxMs: 1000 }, () => 0), 500);
    assert.equal(backoffDelay(1e6, {}, () => 1), 5000);
  });

  it('retries what is retryable until it succeeds, reporting each wait', async () => {
    const waits: number[] = [];
    let calls = 0;
    const out = await retry(async (attempt) => {
      calls++;
      if (attempt < 3) throw transient;
      return 'ok';
    }, { isRetryable, onRetry: (i) => waits.push(i.attempt), sleep: async () => true });
    assert.equal(out, 'ok');
    assert.equal(calls, 3);
    assert.deepEqual(waits, [1, 2]);
  });

  it('throws a non-retryable error at once, and the last error when attempts run out', async () => {
    let calls = 0;
    await assert.rejects(retry(async () => { calls++; throw new Error('fatal'); }, { isRetryable, sleep: async () => true }), /fatal/);
    assert.equal(calls, 1);
    calls = 0;
    await assert.rejects(
      retry(async () => { calls++; throw transient; }, { isRetryable, attempts: 4, sleep: async () => true, exhausted: (e, n) => new Error(`gave up after ${n}: ${(e as Error).message}`) }),
      /gave up after 4: try again/,
    );
    assert.equal(calls, 4);
  });

  it('gives up once the time budget would be exceeded', async () => {
    let clock = 0;
    let calls = 0;
    await assert.rejects(
      retry(async () => { calls++; throw transient; }, {
        isRetryable, retryForMs: 1000, backoff: { baseMs: 200, maxMs: 200 }, random: () => 1, now: () => clock,
        sleep: async (ms) => { clock += ms; return true; },
      }),
      /try again/,
    );
    assert.equal(calls, 6); // attempts at 0, 200, …, 1000 ms; the next wait would end at 1200 > 1000
  });

  it('stops at once when the signal aborts during a wait (a SIGTERM during an outage)', async () => {
    const ac = new AbortController();
    let calls = 0;
    const started = Date.now();
    setTimeout(() => ac.abort(), 50);
    await assert.rejects(retry(async () => { calls++; throw transient; }, { isRetryable, signal: ac.signal, backoff: { baseMs: 60_000, maxMs: 60_000 } }), /try again/);
    assert.equal(calls, 1);
    assert.ok(Date.now() - started < 30_000, 'the 30-60 s wait was cut short');
  });

  it('sleep never rejects and says whether it slept fully', async () => {
    assert.equal(await sleep(1), true);
    const ac = new AbortController();
    ac.abort();
    assert.equal(await sleep(60_000, ac.signal), false);
  });
});
