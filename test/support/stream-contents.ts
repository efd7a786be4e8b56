import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { StreamConsumer } from '../../src/transport/stream-consumer.js';
import { decodeEnvelope, type ChangeEnvelope } from '../../src/model/change-envelope.js';

/**
 * Every envelope in a stream, per shard in shard order (reads until all shards are caught up).
 * Capture's `origin` records (written once per capture session, before any event) are protocol,
 * not changes: left out unless `withOrigins`.
 */
export async function readStreamEnvelopes(
  client: KinesisClient,
  streamName: string,
  timeoutMs = 30_000,
  withOrigins = false,
): Promise<Map<string, ChangeEnvelope[]>> {
  const out = new Map<string, ChangeEnvelope[]>();
  const consumer = new StreamConsumer({ client, streamName, idlePollMinMs: 50, idlePollMaxMs: 100, minCallIntervalMs: 50, emitIdleBatches: true });
  const deadline = setTimeout(() => consumer.stop(), timeoutMs);
  let emptyRounds = 0;
  try {
    await consumer.run((batch) => {
      const list = out.get(batch.shardId) ?? [];
      for (const p of batch.payloads) {
        const e = decodeEnvelope(p);
        if (withOrigins || e.op !== 'origin') list.push(e);
      }
      out.set(batch.shardId, list);
      if (batch.payloads.length === 0 && consumer.caughtUp) {
        // Two empty caught-up polls in a row: nothing more is coming.
        if (++emptyRounds >= 2 * Math.max(1, consumer.shardStatuses().length)) consumer.stop();
      } else emptyRounds = 0;
    });
  } finally {
    clearTimeout(deadline);
  }
  return out;
}
