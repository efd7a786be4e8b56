// Issue #11, defect 8 (first half): a Kinesis stream reused for a new migration (another id, or
// the same id re-created on a fresh state store) still holds the old migration's records; apply
// must ignore them instead of replaying the old migration over the fresh load. Records of an
// earlier build carry no tag and are still applied.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { Document } from 'mongodb';
import type { ChangeEnvelope } from '../../src/model/change-envelope.js';
import { NamespaceRules } from '../../src/model/namespace-filter.js';
import { StateStore } from '../../src/state/store.js';
import { runApply } from '../../src/apply/apply-runner.js';
import { createLogger } from '../../src/util/logger.js';
import { MigratorError } from '../../src/util/errors.js';
import { ExitCode } from '../../src/util/exit-codes.js';
import { FAST_CONSUMER, produce, startStack, targetDocs, type Stack } from './runner-fixtures.js';
import { Clock } from '../support/stream-positions.js';

// Same derivation as migrationTag() in src/source/change-envelope.ts (spelled out here so the test
// also runs against a build without it).
const tag = (id: string, nonce?: string) => createHash('sha256').update(`${id}\0${nonce ?? ''}`).digest('hex').slice(0, 16);

describe('apply ignores stream records of another migration', { timeout: 120_000 }, () => {
  let stack: Stack;
  let store: StateStore;

  before(async () => {
    stack = await startStack();
    store = await StateStore.open({ client: stack.client });
  });
  after(async () => {
    await stack?.stop();
  });

  it('old migration id, same id re-created (new nonce), own and untagged records: only own and untagged are applied', async () => {
    const id = 'reuse';
    const m = await store.createMigration(id);
    assert.match(m.nonce ?? '', /^[0-9a-f]{16}$/, 'a nonce is drawn when the migration is created');
    await store.setPhase(id, 'CATCHING_UP'); // the load is over: apply may write
    const own = tag(id, m.nonce);
    const clock = new Clock();
    const ns = { db: 'reuse', coll: 'items' };
    const insert = (n: number, mig?: string): ChangeEnvelope => {
      const pos = clock.next();
      return { v: 1, op: 'insert', ns, key: { _id: n }, doc: { _id: n, by: mig ?? 'legacy' }, ...pos, ...(mig ? { mig } : {}) };
    };
    const envelopes: ChangeEnvelope[] = [
      ...[1, 2, 3, 4, 5].map((n) => insert(n, tag('previous-migration', 'aaaa'))), // another migration id
      ...[6, 7, 8].map((n) => insert(n, tag(id, 'an-earlier-nonce'))), // this id, created anew since
      ...[9, 10].map((n) => insert(n)), // an earlier build's capture: untagged
      ...[11, 12, 13].map((n) => insert(n, own)),
    ];
    const stream = stack.kl.uniqueStreamName('reuse');
    await stack.kl.createStream(stream, 2);
    await produce(stack.kl.client, stream, envelopes);

    const warnings: string[] = [];
    const out = new Writable({
      write(chunk, _e, done) {
        for (const l of String(chunk).split('\n')) {
          if (!l.trim()) continue;
          const j = JSON.parse(l) as { level: number; msg: string };
          if (j.level === 40) warnings.push(j.msg);
        }
        done();
      },
    });
    const r = await runApply({
      target: stack.client,
      store,
      migrationId: id,
      rules: new NamespaceRules(),
      kinesis: stack.kl.client,
      streamName: stream,
      ownerId: `reuse-${Math.random().toString(36).slice(2)}`,
      logger: createLogger({ format: 'json', verbose: false, out }),
      leaseTtlMs: 5_000,
      consumer: FAST_CONSUMER,
      stopWhenCaughtUp: true,
    });
    assert.equal(r.stopReason, 'caught-up');
    const ids = (await targetDocs(stack.client, 'reuse.items')).map((d: Document) => d._id as number);
    assert.deepEqual(ids, [9, 10, 11, 12, 13], 'records of other migrations were not applied');
    assert.equal(r.status.totals.skipped, 8, 'the ignored records are counted as skipped');
    assert.ok(warnings.some((w) => /another migration/.test(w)), 'a WARN says the stream holds records of another migration');
  });

  // Defect 8, second half: a load that outlasts the stream's retention loses the first changes.
  // Capture broadcasts an origin record (sent 0) before anything else; a shard read from its start
  // whose first own record is anything else lost its beginning.
  for (const [name, lead, expectLost] of [
    ['the origin was trimmed away: the first own record is data', 'none', true],
    ['only a capture restart\'s origin (after events already sent) is left', 'restart', true],
    ['the origin (sent 0) is there', 'origin', false],
  ] as const) {
    it(`a fresh shard where ${name}: ${expectLost ? 'HISTORY_LOST' : 'applied'}`, async () => {
      const id = `gap-${lead}`;
      const m = await store.createMigration(id);
      await store.setPhase(id, 'CATCHING_UP');
      const own = tag(id, m.nonce);
      const clock = new Clock();
      const ns = { db: `gap_${lead}`, coll: 'items' };
      const origin = (sent: number): ChangeEnvelope =>
        ({ v: 1, op: 'origin', ns: { db: '' }, ct: clock.next().ct, rt: {}, origin: { sent }, mig: own }) as ChangeEnvelope;
      const data = [1, 2, 3, 4].map((n): ChangeEnvelope => ({ v: 1, op: 'insert', ns, key: { _id: n }, doc: { _id: n }, ...clock.next(), mig: own }));
      const envelopes = lead === 'origin' ? [origin(0), ...data] : lead === 'restart' ? [origin(40), ...data] : data;
      const stream = stack.kl.uniqueStreamName('gap');
      await stack.kl.createStream(stream, 1);
      await produce(stack.kl.client, stream, envelopes);
      const run = runApply({
        target: stack.client,
        store,
        migrationId: id,
        rules: new NamespaceRules(),
        kinesis: stack.kl.client,
        streamName: stream,
        ownerId: `gap-${Math.random().toString(36).slice(2)}`,
        logger: createLogger({ format: 'json', verbose: false, out: new Writable({ write: (_c, _e, done) => done() }) }),
        leaseTtlMs: 5_000,
        consumer: FAST_CONSUMER,
        stopWhenCaughtUp: true,
      });
      if (expectLost) {
        await assert.rejects(run, (err: MigratorError) => {
          assert.equal(err.exitCode, ExitCode.HISTORY_LOST, err.message);
          assert.match(err.message, /no longer holds the start of migration/);
          return true;
        });
        assert.equal(await stack.client.db(ns.db).collection('items').countDocuments(), 0, 'nothing applied past the gap');
      } else {
        assert.equal((await run).stopReason, 'caught-up');
        assert.equal(await stack.client.db(ns.db).collection('items').countDocuments(), 4);
      }
    });
  }
});
