import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DurabilityLedger, type PendingSend } from '../../src/transport/producer-ledger.js';

function pending(seq: number, bytes: number, log: string[]): PendingSend {
  return { seq, tag: seq * 10, routingKey: 'k', payload: new Uint8Array(bytes), resolve: () => log.push(`admitted ${seq}`), reject: () => log.push(`rejected ${seq}`) };
}

describe('DurabilityLedger', () => {
  it('the durable tag advances only over a complete prefix, in send order', async () => {
    const ledger = new DurabilityLedger(1000);
    const seen: number[] = [];
    ledger.onDurable((t) => seen.push(t));
    const e1 = ledger.open(1, 10, 5, false);
    const e2 = ledger.open(2, 20, 5, false);
    const e3 = ledger.open(3, 30, 5, false);
    for (const e of [e1, e2, e3]) e.remaining = 1;
    const flushed = ledger.whenDurable(2);
    assert.equal(ledger.complete(e2), false, 'seq 1 is not durable yet');
    assert.equal(ledger.durableTag, undefined);
    assert.equal(ledger.complete(e1), true);
    assert.equal(ledger.durableTag, 20);
    assert.deepEqual(seen, [20]);
    await flushed;
    assert.equal(ledger.bufferedBytes, 5);
    assert.equal(ledger.complete(e3), true);
    assert.equal(ledger.durableSeq, 3);
    assert.equal(ledger.bufferedBytes, 0);
  });

  it('the broadcast barrier is the oldest broadcast with a copy not yet accepted', () => {
    const ledger = new DurabilityLedger(1000);
    assert.equal(ledger.barrierSeq, Infinity);
    const b = ledger.open(1, 1, 1, true);
    b.remaining = 2;
    assert.equal(ledger.barrierSeq, 1);
    ledger.complete(b);
    assert.equal(ledger.barrierSeq, 1, 'one copy is still out');
    ledger.complete(b);
    assert.equal(ledger.barrierSeq, Infinity);
  });

  it('admission is FIFO within the buffer bound; an oversized send goes alone into an empty buffer', () => {
    const ledger = new DurabilityLedger(10);
    const log: string[] = [];
    assert.equal(ledger.mayAdmitNow(8), true);
    const first = ledger.open(1, 10, 8, false);
    first.remaining = 1;
    assert.equal(ledger.mayAdmitNow(5), false);
    ledger.wait(pending(2, 5, log));
    assert.equal(ledger.mayAdmitNow(1), false, 'a small send does not overtake a waiting one');
    ledger.wait(pending(3, 1, log));
    assert.equal(ledger.urgent, true);
    assert.equal(ledger.nextAdmissible(), undefined);
    ledger.complete(first);
    assert.equal(ledger.nextAdmissible()?.seq, 2);
    ledger.open(2, 20, 5, false).remaining = 1;
    assert.equal(ledger.nextAdmissible()?.seq, 3);
    assert.equal(ledger.urgent, false);
    const big = new DurabilityLedger(10);
    assert.equal(big.mayAdmitNow(50), true, 'oversized into an empty buffer');
  });

  it('failAll rejects waiting sends and flushes', async () => {
    const ledger = new DurabilityLedger(1);
    const log: string[] = [];
    ledger.open(1, 1, 1, false).remaining = 1;
    ledger.wait(pending(2, 1, log));
    const flush = ledger.whenDurable(1);
    ledger.failAll(new Error('boom'));
    assert.deepEqual(log, ['rejected 2']);
    await assert.rejects(flush, /boom/);
    assert.equal(ledger.urgent, false);
  });
});
