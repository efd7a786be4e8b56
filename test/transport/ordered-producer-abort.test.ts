/**
 * Aborting the producer while it looks for an ambiguous write in a closed shard: the scan stops.
 * (Before the fix, the GetRecords retry of that scan ignored the abort and polled a throttled
 * shard forever.)
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { OrderedProducer, ProducerClosedError } from '../../src/transport/ordered-producer.js';
import { FakeKinesis } from './fake-kinesis.js';
import { waitUntil } from '../support/wait.js';

describe('OrderedProducer: abort during a reshard', () => {
  it('stops scanning for an ambiguous record when aborted', async () => {
    const fake = new FakeKinesis({ shardCount: 1 });
    let first = true;
    fake.callFault = () => {
      if (!first) return undefined;
      first = false;
      // The shard closes while the first write fails on the wire (maybe stored, maybe not):
      // its retry lands in a child, and the producer must look for it in the closed parent.
      fake.split(fake.openShards[0].shardId);
      return 'network';
    };
    fake.getRecordsFault = () => 'throttle';
    const producer = await OrderedProducer.create({ client: fake.client, streamName: fake.streamName, retryBackoff: { baseMs: 1, maxMs: 4 }, lingerMs: 0 });
    await producer.send('key', new Uint8Array(100), 1);
    const flushed = producer.flush().then(
      () => undefined,
      (err: unknown) => err,
    );
    await waitUntil(() => fake.getRecordsCalls >= 3, 20_000, 'the producer scans the closed shard');
    producer.abort('test stop');
    assert.ok((await flushed) instanceof ProducerClosedError);
    await sleep(100); // a call already under way may still finish
    const after = fake.getRecordsCalls;
    await sleep(500);
    assert.equal(fake.getRecordsCalls, after, 'no GetRecords after the abort');
  });
});
