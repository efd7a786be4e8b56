/**
 * The options of `runApply` (apply-runner.ts) and their defaults, and the sequence number a
 * checkpoint saves for "start of the shard".
 */
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import type { MongoClient } from 'mongodb';
import type { NamespaceRules } from '../model/namespace-filter.js';
import type { ApplyStateStore } from '../state/store.js';
import type { ShardReaderTuning } from '../transport/shard-reader.js';
import type { Logger } from '../util/logger.js';
import type { ApplyStatus } from './apply-status.js';
import type { KeyFilterMode } from './plan.js';
import type { RetryPolicy } from './retry.js';

/**
 * Sequence number saved for a shard that has no applied record yet but needs a checkpoint (a
 * position saved around a DDL in its first batch, or an empty closed shard). Real Kinesis
 * sequence numbers are never "0"; it is read back as "start of the shard" (TRIM_HORIZON).
 */
export const START_OF_SHARD_SEQUENCE = '0';

export const shownSequence = (seq: string | undefined): string =>
  seq === undefined || seq === START_OF_SHARD_SEQUENCE ? 'TRIM_HORIZON (start of the shard)' : seq;

export const DEFAULT_LEASE_TTL_MS = 30_000;
export const DEFAULT_CONFLICT_RETRY_LIMIT_MS = 60_000;
export const DEFAULT_STATUS_INTERVAL_MS = 10_000;
/** A shard with work in hand and no target write acknowledged for this long is reported stalled (WARN, status). */
export const DEFAULT_STALL_WARN_MS = 60_000;
/** …and after this long apply fails with APPLY_STALLED. */
export const DEFAULT_STALL_FAIL_MS = 15 * 60_000;

/** Tuning of the Kinesis reading side (see StreamConsumer / ShardReader). */
export interface ApplyConsumerTuning extends ShardReaderTuning {
  /** ListShards period: discovery of new/free shards (default min(10 s, lease ttl / 3)). */
  shardDiscoveryIntervalMs?: number;
}

export interface ApplyRunnerOptions {
  target: MongoClient;
  store: ApplyStateStore;
  migrationId: string;
  rules: NamespaceRules;
  kinesis: KinesisClient;
  streamName: string;
  /** Unique per process incarnation: see {@link defaultOwnerId}. */
  ownerId: string;
  logger: Logger;
  /** Default 30 s. Leases are renewed every ttl/3. */
  leaseTtlMs?: number;
  /** Grace after expiry before another owner may take a lease (default: the store's, 1 s). */
  leaseGraceMs?: number;
  /** Hold at most this many shard leases (default: every free shard). */
  maxShards?: number;
  signal?: AbortSignal;
  /** Called every `statusIntervalMs` and once at the end. */
  onStatus?: (status: ApplyStatus) => void;
  /** Progress log / onStatus period (default 10 s). */
  statusIntervalMs?: number;
  /** Period of the 'apply progress' log line (default 10 s; at least statusIntervalMs). */
  progressLogIntervalMs?: number;
  /**
   * Resolve with 'caught-up' once every shard of the stream is caught up (or ended) and everything
   * read has been applied by THIS process (shards held by others keep it waiting).
   */
  stopWhenCaughtUp?: boolean;
  /** Plain CDC: no full migration behind this id, so no migration document to wait for (see waitForInitialLoad). */
  cdcOnly?: boolean;
  /**
   * Resolve with 'completed' once the migration's phase is COMPLETED (read every 2 s, and before
   * anything is applied): a `migrator apply` beside full-migrate has nothing left to do after the
   * cutover (every shard applied the barrier before COMPLETED), and applying source changes to
   * the target after it would overwrite what the applications now write there. Set by the CLI
   * unless --cdc-only (plain CDC has no phase); full-migrate stops its own apply itself.
   */
  exitWhenCompleted?: boolean;
  /** How long a batch with unresolved duplicate-key conflicts is retried (default 60 s). */
  conflictRetryLimitMs?: number;
  /** Backoff between conflict retries (default 100 ms doubling up to 5 s, jittered). */
  conflictRetryPolicy?: { initialDelayMs: number; maxDelayMs: number };
  /** DDL rendezvous poll period (default 500 ms). */
  ddlPollMs?: number;
  consumer?: ApplyConsumerTuning;
  writer?: { retryPolicy?: RetryPolicy; keyFilter?: KeyFilterMode; writeTimeoutMs?: number };
  /**
   * Stall bounds: a shard with a batch in hand and no target write acknowledged for `warnMs`
   * (default 60 s) is logged (WARN, repeated every `warnMs`) and shown stalled in `status`; after
   * `failMs` (default 15 min) apply fails with APPLY_STALLED. Waits for other shards (a DDL
   * rendezvous) and conflict backoff are not stalls.
   */
  stall?: { warnMs?: number; failMs?: number };
  /** Release held leases when returning (default true). false simulates a crash (tests). */
  releaseLeasesOnExit?: boolean;
}
