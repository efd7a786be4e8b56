/**
 * A stop (shutdown, lease lost, another shard failing) that arrives while the writer replays a
 * schema event must fail the batch, so the DDL is replayed later. Before, the refusal of the
 * lease fence looked like "the target refused a schema change": it was logged, the DDL passed as
 * applied (afterDdl marks it applied for every shard) and the checkpoint moved past it, so the
 * index was never built by apply.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MongoClient } from 'mongodb';
import { NamespaceRules } from '../../src/model/namespace-filter.js';
import { ApplyWriter } from '../../src/apply/writer.js';
import { schemaEvent } from './helpers.js';
import { Clock } from '../support/stream-positions.js';

describe('ApplyWriter stopped during a schema replay', () => {
  it('rejects the batch instead of passing the DDL as applied', async () => {
    const abort = new AbortController();
    const stopped = new Error('stopping: lease lost');
    // A target behind the lease fence: it answers `hello`, then the stop arrives and the fence
    // refuses the createIndexes (as fenced-target.ts does with the abort reason).
    const client = {
      db: () => ({
        command: async (cmd: Record<string, unknown>) => {
          if (cmd.hello) return { ok: 1 };
          abort.abort(stopped);
          throw stopped;
        },
      }),
    } as unknown as MongoClient;
    const afterDdl: string[] = [];
    const writer = new ApplyWriter({
      client,
      rules: new NamespaceRules(),
      retryHooks: { signal: abort.signal },
      beforeDdl: async () => 'apply',
      afterDdl: async (e) => void afterDdl.push(e.op),
    });
    const e = schemaEvent(new Clock(), 'createIndexes', { indexes: [{ key: { a: 1 }, name: 'a_1' }] });
    await assert.rejects(writer.applyBatch([e]), (err: Error) => {
      let c: unknown = err;
      while (c && c !== stopped) c = (c as { cause?: unknown }).cause;
      assert.equal(c, stopped, `the stop is in the cause chain of ${err.message}`);
      return true;
    });
    assert.deepEqual(afterDdl, [], 'the DDL is not marked applied');
  });
});
