/**
 * Cross-shard coordination of DDL for several shards (and `migrator apply` processes).
 *
 * Capture broadcasts every DDL envelope to all shards. Applying each copy on its own would be
 * wrong: shard A could drop or rename a collection while shard B still has earlier inserts for
 * it, or B could re-run a rename after A already wrote into the re-created source name.
 *
 * Protocol (state in `ddl_rendezvous`, keyed by the DDL's stream position):
 *  1. A shard reaching the DDL has applied and checkpointed everything before it (the writer
 *     calls `onProgress` before `beforeDdl`), then records its arrival.
 *  2. It waits until every expected shard has arrived (or the DDL is already marked applied).
 *  3. The executor (the smallest shard id) runs the DDL, then marks it applied (`afterDdl`);
 *     every other shard waits for that mark and skips its copy.
 *  4. No shard goes past the DDL before it is applied, so nothing written after it can be
 *     undone by it. A crash of the executor between running and marking replays the DDL on
 *     restart (its checkpoint is before it), which is idempotent because nobody moved on.
 * Expected shards are the open shards given by the caller; a resharding that happens while a
 * DDL is pending is not handled here (the caller must pass the shards that received the copy).
 */
import { positionKey, type ChangeEnvelope } from '../source/change-envelope.js';
import type { DdlStateStore } from '../state/store.js';

export interface DdlGateOptions {
  store: DdlStateStore;
  migrationId: string;
  shardId: string;
  /** Shards that receive a copy of every DDL (the stream's open shards). */
  shards: () => readonly string[] | Promise<readonly string[]>;
  pollMs?: number;
  /** Abort the wait (e.g. the lease was lost or the process stops). */
  signal?: AbortSignal;
  /** Called while waiting, at most every `pollMs` (for progress/logging). */
  onWait?: (info: { ddlKey: string; arrived: readonly string[]; shards: readonly string[] }) => void;
}

export interface DdlGate {
  beforeDdl(envelope: ChangeEnvelope): Promise<'apply' | 'skip'>;
  afterDdl(envelope: ChangeEnvelope): Promise<void>;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason ?? new Error('aborted'));
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason ?? new Error('aborted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });

export function createDdlGate(options: DdlGateOptions): DdlGate {
  const pollMs = options.pollMs ?? 500;
  const { store, migrationId, shardId } = options;
  return {
    async beforeDdl(envelope) {
      const ddlKey = positionKey(envelope);
      const shards = await options.shards();
      if (!shards.includes(shardId)) throw new Error(`shard ${shardId} is not among the DDL's expected shards (${shards.join(', ')})`);
      let doc = await store.arriveAtDdl(migrationId, ddlKey, shardId, shards);
      const executor = [...doc.shards].sort()[0];
      for (;;) {
        if (doc.appliedAt) return 'skip';
        const everyone = doc.shards.every((s) => doc.arrived.includes(s));
        if (everyone && executor === shardId) return 'apply';
        options.onWait?.({ ddlKey, arrived: doc.arrived, shards: doc.shards });
        await sleep(pollMs, options.signal);
        doc = (await store.getDdlRendezvous(migrationId, ddlKey))!;
      }
    },
    async afterDdl(envelope) {
      await store.markDdlApplied(migrationId, positionKey(envelope), shardId);
    },
  };
}
