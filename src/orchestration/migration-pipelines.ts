import type { KinesisClient } from '@aws-sdk/client-kinesis';
import type { MongoClient, Timestamp } from 'mongodb';
import { runApply, defaultOwnerId, type ApplyStatus } from '../apply/apply-runner.js';
import { retryTransient } from '../db/transient-retry.js';
import type { NamespaceRules } from '../model/namespace-filter.js';
import { runCapture, type CaptureProgress } from '../source/capture-runner.js';
import type { MigrationDoc, StateStore } from '../state/store.js';
import type { Logger } from '../util/logger.js';
import { sleep } from '../util/retry.js';

/** What the background pipelines of a full migration need (a subset of FullMigrationInput). */
export interface PipelinesInput {
  migrationId: string;
  source: MongoClient;
  target: MongoClient;
  store: StateStore;
  rules: NamespaceRules;
  kinesis: KinesisClient;
  streamName: string;
  leaseTtlMs?: number;
  log: Logger;
  signal: AbortSignal;
}

/**
 * Capture (source → stream) and apply (stream → target) running in the background of the
 * orchestration, each until stopped; a failure of either rejects {@link race} at once, so a
 * background failure stops the orchestration instead of leaving it waiting.
 */
export class MigrationPipelines {
  private capture?: { abort: AbortController; done: Promise<CaptureProgress> };
  private apply?: { abort: AbortController; done: Promise<unknown>; status?: ApplyStatus };

  constructor(private readonly p: PipelinesInput) {}

  /** Apply's latest status (shards, totals), for catch-up detection and progress text. */
  get applyStatus(): ApplyStatus | undefined {
    return this.apply?.status;
  }

  /** Capture runs in the background from the resume point (or its own checkpoint) until stopped. */
  startCapture(resumePoint: MigrationDoc['resumePoint']): void {
    if (this.capture) return;
    const abort = new AbortController();
    const stop = () => abort.abort();
    this.p.signal.addEventListener('abort', stop, { once: true });
    const rp = resumePoint;
    const done = runCapture({
      source: this.p.source,
      store: this.p.store,
      migrationId: this.p.migrationId,
      rules: this.p.rules,
      kinesis: this.p.kinesis,
      streamName: this.p.streamName,
      start: rp ? (rp.rt ? { rt: rp.rt } : { ct: rp.ct }) : undefined,
      leaseTtlMs: this.p.leaseTtlMs,
      signal: abort.signal,
      log: this.p.log.child({ component: 'capture' }),
    });
    this.capture = { abort, done };
  }

  /** Apply runs in the background from its checkpoints; status feeds catch-up detection. */
  startApply(): void {
    if (this.apply) return;
    const abort = new AbortController();
    this.p.signal.addEventListener('abort', () => abort.abort(), { once: true });
    const entry: NonNullable<MigrationPipelines['apply']> = { abort, done: Promise.resolve() };
    entry.done = runApply({
      target: this.p.target,
      store: this.p.store,
      migrationId: this.p.migrationId,
      rules: this.p.rules,
      kinesis: this.p.kinesis,
      streamName: this.p.streamName,
      ownerId: defaultOwnerId(),
      logger: this.p.log.child({ component: 'apply' }),
      signal: abort.signal,
      leaseTtlMs: this.p.leaseTtlMs,
      statusIntervalMs: 500,
      onStatus: (s) => (entry.status = s),
    });
    this.apply = entry;
  }

  /** Stops capture and apply gracefully (each saves its checkpoint). */
  async stop(): Promise<void> {
    this.capture?.abort.abort();
    this.apply?.abort.abort();
    const results = await Promise.allSettled([this.capture?.done, this.apply?.done]);
    this.capture = undefined;
    this.apply = undefined;
    for (const r of results) if (r.status === 'rejected' && !this.p.signal.aborted) throw r.reason;
  }

  /** Rejects as soon as capture or apply fails, so a background failure stops the orchestration. */
  async race<T>(work: Promise<T>): Promise<T> {
    const failures = [this.capture?.done, this.apply?.done].filter(Boolean).map((d) =>
      d!.then(
        () => new Promise<never>(() => undefined),
        (err: unknown) => Promise.reject(err),
      ),
    );
    return Promise.race([work, ...failures]);
  }

  /** Waits `ms` (less when the run's signal aborts); rejects when capture or apply fails meanwhile. */
  async sleep(ms: number): Promise<void> {
    await this.race(sleep(ms, this.p.signal));
  }

  /**
   * For `initial-load`'s hand-over: waits (at most `maxMs`) until the capture checkpoint has
   * reached the source's operation time as of now, so the stream holds every change made during
   * the load when capture stops. Returns false when it did not get there in time (capture far
   * behind, or a source that reports no operation time): nothing is lost then either — the next
   * capture reads the rest from the checkpoint — but the stream is not complete yet.
   */
  async waitForCaptureToReachNow(maxMs = 60_000): Promise<boolean> {
    // Best effort: a source failing over right now must not fail a load that is already done.
    const now = await retryTransient('source operation time', () => this.p.source.db('admin').command({ ping: 1 }), { retryForMs: 20_000 }).then(
      (reply) => reply.operationTime as Timestamp | undefined,
      () => undefined,
    );
    if (!now) return false;
    const deadline = Date.now() + maxMs;
    while (!this.p.signal.aborted && Date.now() < deadline) {
      const cp = await this.p.store.getCaptureCheckpoint(this.p.migrationId);
      if (cp && cp.ct.compare(now) >= 0) return true;
      await this.sleep(200);
    }
    return false;
  }
}
