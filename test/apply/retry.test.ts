import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Int32, MongoBulkWriteError, MongoNetworkError, MongoServerError } from 'mongodb';
import { RetriesExhaustedError, bulkWriteErrors, isNamespaceNotFound, isTransientError } from '../../src/apply/errors.js';
import { withRetry } from '../../src/apply/retry.js';

const serverError = (code: number, message = `code ${code}`, labels: string[] = []) => {
  const e = new MongoServerError({ message, code, errmsg: message, errorLabels: labels });
  return e;
};

describe('error classification', () => {
  it('treats network, primary changes, throttling and retryable labels as transient', () => {
    assert.ok(isTransientError(new MongoNetworkError('connection 3 to 127.0.0.1:1 closed')));
    for (const code of [10107, 11602, 189, 91, 6, 9001, 112, 16500]) assert.ok(isTransientError(serverError(code)), String(code));
    assert.ok(isTransientError(serverError(2, 'x', ['RetryableWriteError'])));
    assert.ok(isTransientError(serverError(1, 'Request throttled, try again')));
    assert.ok(isTransientError({ name: 'MongoBulkWriteError', message: 'connection 4 to x closed', writeErrors: [] }));
    // A change stream read with promoteValues: false reports its code as an Int32 wrapper.
    assert.ok(isTransientError(Object.assign(new Error('interrupted'), { code: new Int32(11602) })));
    assert.equal(isTransientError(Object.assign(new Error('bad'), { code: new Int32(2) })), false);
  });

  it('does not retry validation, duplicate keys or unknown errors', () => {
    assert.equal(isTransientError(serverError(11000, 'E11000 duplicate key')), false);
    assert.equal(isTransientError(serverError(121, 'Document failed validation')), false);
    assert.equal(isTransientError(new Error('boom')), false);
    assert.equal(isTransientError(undefined), false);
    assert.ok(isNamespaceNotFound(serverError(26, 'ns not found')));
  });

  it('reads the per-op errors of a bulk write error', () => {
    const err = new MongoBulkWriteError(
      { message: 'dup', code: 11000, writeErrors: [{ index: 2, code: 11000, errmsg: 'E11000', err: {} } as never] },
      {} as never,
    );
    assert.deepEqual(bulkWriteErrors(err).map((e) => [e.index, e.code]), [[2, 11000]]);
    assert.deepEqual(bulkWriteErrors(new Error('x')), []);
  });
});

describe('withRetry', () => {
  const policy = { maxAttempts: 4, initialDelayMs: 10, maxDelayMs: 40 };

  it('retries transient errors with capped backoff, then succeeds', async () => {
    const sleeps: number[] = [];
    let calls = 0;
    const result = await withRetry(
      'op',
      async () => {
        if (++calls < 3) throw serverError(10107, 'not primary');
        return 'done';
      },
      policy,
      { sleep: async (ms) => void sleeps.push(ms) },
    );
    assert.equal(result, 'done');
    assert.equal(calls, 3);
    assert.equal(sleeps.length, 2);
    assert.ok(sleeps.every((ms) => ms >= 0 && ms <= 40));
  });

  it('rethrows non-transient errors at once and gives up after maxAttempts', async () => {
    let calls = 0;
    await assert.rejects(withRetry('op', async () => { calls++; throw serverError(121, 'invalid'); }, policy, { sleep: async () => {} }), /invalid/);
    assert.equal(calls, 1);
    calls = 0;
    await assert.rejects(
      withRetry('bulkWrite x', async () => { calls++; throw serverError(91, 'shutting down'); }, policy, { sleep: async () => {} }),
      (err: Error) => err instanceof RetriesExhaustedError && err.attempts === 4 && /bulkWrite x: still failing after 4 attempts: shutting down/.test(err.message),
    );
    assert.equal(calls, 4);
  });

  it('waits longer after each failure, never beyond the cap, and never less than half the nominal delay', async () => {
    const sleeps: number[] = [];
    await assert.rejects(
      withRetry('op', async () => { throw serverError(91, 'shutting down'); }, { maxAttempts: 6, initialDelayMs: 10, maxDelayMs: 40 }, { sleep: async (ms) => void sleeps.push(ms) }),
      RetriesExhaustedError,
    );
    // Nominal delays 10, 20, 40, 40, 40 (capped); each wait is in [nominal/2, nominal].
    const nominal = [10, 20, 40, 40, 40];
    assert.equal(sleeps.length, nominal.length);
    sleeps.forEach((ms, i) => assert.ok(ms >= nominal[i]! / 2 && ms <= nominal[i]!, `wait ${i + 1}: ${ms} ms for nominal ${nominal[i]}`));
  });

  it('stops retrying at once when its signal aborts, rejecting with the abort reason', async () => {
    const abort = new AbortController();
    let calls = 0;
    const run = withRetry(
      'op',
      async () => {
        calls++;
        throw serverError(91, 'shutting down');
      },
      { maxAttempts: 100, initialDelayMs: 60_000, maxDelayMs: 60_000 },
      { signal: abort.signal },
    );
    setTimeout(() => abort.abort(new Error('stopping')), 50);
    await assert.rejects(run, /stopping/);
    assert.equal(calls, 1, 'no attempt after the abort');
  });
});
