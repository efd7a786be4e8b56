/** The ordered producer's options (ordered-producer.ts) and their defaults. */
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { CHUNK_ASSEMBLY_TIMEOUT_MS, type CompressionOptions } from './record-framing.js';
import { resolveLingerOptions, type ResolvedLingerOptions } from './linger-policy.js';
import { PUT_RECORDS_MAX_BYTES, PUT_RECORDS_MAX_RECORDS } from './stream-limits.js';
import type { BackoffOptions } from '../util/retry.js';

export interface OrderedProducerOptions {
  client: KinesisClient;
  streamName: string;
  /**
   * Bound on payload bytes buffered and not yet acknowledged (default 16 MiB: with the per-item
   * bookkeeping that is ~2× in heap for small payloads; 16 MiB still holds several full records per
   * shard, i.e. seconds of a shard's 1 MiB/s). Encoded records add at most one record per shard in
   * flight plus the frames of chunked payloads being sent.
   */
  maxBufferedBytes?: number;
  /**
   * Linger floor: how long a shard's oldest pending payload waits for more to aggregate while the
   * shard's record rate is well under `maxRecordsPerShardSecond` (default 5 ms).
   */
  lingerMs?: number;
  /** Linger ceiling, whatever the record rate (default 250 ms, or `lingerMs` if larger). */
  maxLingerMs?: number;
  /**
   * Record budget per shard per second that the adaptive linger keeps to (default 50; Kinesis
   * accepts 1,000 records/s per shard). See linger-policy.ts.
   */
  maxRecordsPerShardSecond?: number;
  /** Concurrent PutRecords calls, each for a disjoint set of shards (default 4). */
  maxConcurrentCalls?: number;
  /** Max bytes (data + partition keys) per PutRecords call (default 5 MiB); a lone larger record is still sent. */
  maxCallBytes?: number;
  /** Max records per PutRecords call (default 500). */
  maxCallRecords?: number;
  /** Max record size (data + partition key). Default: DescribeStreamSummary, else 1 MiB. */
  maxRecordSizeBytes?: number;
  /** Body compression (default brotli quality 4 when it saves ≥ 10%). */
  compression?: CompressionOptions;
  /** Upper bound of the adaptive raw/record packing factor for compressible data (default 8). */
  maxPackFactor?: number;
  /** Backoff of failed records / calls (default 100 ms doubling up to 5 s, jittered). */
  retryBackoff?: BackoffOptions;
  /** Give up (fatal error) after this many attempts of one record (default Infinity). */
  maxAttempts?: number;
  /**
   * Restart a chunked payload (new payload id, from chunk 0) when its chunks have been going on
   * for longer than this (default: half the readers' assembly timeout, 5 min), so readers never
   * time out an assembly a live producer is still completing.
   */
  chunkRestartAfterMs?: number;
  /** Durable tag listener (same as calling `onDurable`). */
  onDurable?: (tag: number) => void;
  /** Called once when the producer fails fatally (all pending promises reject with the error). */
  onError?: (error: unknown) => void;
  /** Called on each retry, for logging/metrics. */
  onRetry?: (info: RetryInfo) => void;
  /** Random source for jitter (tests). */
  random?: () => number;
}

export interface RetryInfo {
  scope: 'record' | 'call' | 'list-shards';
  errorName: string;
  throttled: boolean;
  shardId?: string;
  attempt: number;
  delayMs: number;
}

/** The settings the producer runs with, defaults applied. */
export interface ProducerSettings {
  maxBufferedBytes: number;
  linger: ResolvedLingerOptions;
  maxConcurrentCalls: number;
  maxCallBytes: number;
  maxCallRecords: number;
  maxRecordSizeBytes: number;
  compression: CompressionOptions;
  maxPackFactor: number;
  retryBackoff: BackoffOptions;
  maxAttempts: number;
  chunkRestartAfterMs: number;
  random: () => number;
}

export function producerSettings(options: OrderedProducerOptions & { maxRecordSizeBytes: number }): ProducerSettings {
  return {
    maxBufferedBytes: options.maxBufferedBytes ?? 16 * 1024 * 1024,
    linger: resolveLingerOptions({ floorMs: options.lingerMs, maxMs: options.maxLingerMs, recordsPerSecond: options.maxRecordsPerShardSecond }),
    maxConcurrentCalls: Math.max(1, options.maxConcurrentCalls ?? 4),
    maxCallBytes: options.maxCallBytes ?? PUT_RECORDS_MAX_BYTES,
    maxCallRecords: Math.min(PUT_RECORDS_MAX_RECORDS, Math.max(1, options.maxCallRecords ?? PUT_RECORDS_MAX_RECORDS)),
    maxRecordSizeBytes: options.maxRecordSizeBytes,
    compression: options.compression ?? {},
    maxPackFactor: Math.max(1, options.maxPackFactor ?? 8),
    retryBackoff: options.retryBackoff ?? { baseMs: 100, maxMs: 5000 },
    maxAttempts: options.maxAttempts ?? Infinity,
    chunkRestartAfterMs: options.chunkRestartAfterMs ?? CHUNK_ASSEMBLY_TIMEOUT_MS / 2,
    random: options.random ?? Math.random,
  };
}
