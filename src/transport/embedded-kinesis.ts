/**
 * The embedded transport: with no `--kinesis-stream`, full-migrate runs its own Kinesis engine
 * (the npm package `kinesis-local`, kinesis-mock compiled to JavaScript) as a child process on
 * loopback, with one stream `migrator` of ONE shard, so a single machine migrates with nothing but
 * two connection strings.
 *
 * CRASH SAFETY BY CONSTRUCTION, NOT BY PERSISTENCE
 * kinesis-local keeps its streams in memory (its optional persistence writes a snapshot every few
 * seconds, not per record, so it cannot back capture's "durable in the stream" checkpoints). The
 * embedded engine therefore runs WITHOUT persistence, the stream is created fresh on every start,
 * and the pipeline restarts from what is durable on the TARGET side ({@link restartFromTarget}):
 * capture re-reads the source's change stream from the last event apply has applied.
 * `--data-dir` holds the engine's working directory and log (`<data-dir>/kinesis/`), no stream data.
 *
 * Process lifetime: the engine must never outlive the migrator.
 *  - `stop()` closes its stdin and sends SIGTERM (SIGKILL after 5 s), and waits for the exit;
 *  - a process 'exit' hook SIGKILLs it (normal exit, process.exit, a second Ctrl-C);
 *  - it is started through a tiny entry point (ENGINE_ENTRY) that exits when its stdin reaches EOF,
 *    i.e. when the migrator is gone however it died (SIGKILL, OOM killer): the kernel closes the
 *    pipe's write end.
 * It listens on 127.0.0.1 only (ENGINE_ENTRY pins it there).
 *  - It runs in its own process group (`detached`), so a Ctrl-C at the terminal (SIGINT to the
 *    foreground group) reaches only the migrator, which then stops gracefully: capture flushes its
 *    last records into the still-running engine before the engine is stopped. (execa's `cleanup`
 *    does not apply to detached children; the exit hook and the stdin watchdog replace it.)
 *  - If the engine dies on its own, the migrator cannot continue (its Kinesis calls would be
 *    retried forever): see `onUnexpectedExit`.
 *
 * The process itself (ports, the stdin watchdog, loopback pinning, the facts about kinesis-local
 * relied on) is kinesis-local-launcher.ts's.
 */
import { createWriteStream, mkdirSync } from 'node:fs';
import { join, resolve as resolvePath } from 'node:path';
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { positionKey, type EventPosition } from '../model/change-envelope.js';
import { DEFAULT_LEASE_GRACE_MS, type ShardDoc, type StateStore } from '../state/store.js';
import { MigratorError, errorMessage } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';
import type { Logger } from '../util/logger.js';
import { createStreamAndWait, launchKinesisLocal, type KinesisLocalProcess } from './kinesis-local-launcher.js';
import { listAllShards } from './shard-map.js';
import { isDeadLocalOwner } from '../state/lease-owner.js';
import { sleep } from '../util/retry.js';

/** The stream of the embedded engine. */
export const EMBEDDED_STREAM_NAME = 'migrator';
/** One shard: ordering is trivial, and the local engine's throughput is not shard-bound. */
export const EMBEDDED_SHARD_COUNT = 1;
export const EMBEDDED_REGION = 'us-east-1';


export interface EmbeddedKinesisOptions {
  /** The migrator's --data-dir: the engine's working directory and log go to `<dataDir>/kinesis/`. */
  dataDir: string;
  log: Logger;
  /** Max wait for the engine to answer; default 60 s (it starts in 1–2 s on an idle machine). */
  startTimeoutMs?: number;
  /**
   * Called once if the engine exits while not being stopped (crash, killed from outside). The
   * migration cannot go on without it; nothing is lost (see restartFromTarget).
   */
  onUnexpectedExit?: (description: string) => void;
}

export interface EmbeddedKinesis {
  /** `http://127.0.0.1:PORT` */
  endpoint: string;
  /** Destroyed by stop(). */
  client: KinesisClient;
  streamName: string;
  /** Open shard ids of the fresh stream. */
  shardIds: string[];
  /** The engine's process id. */
  pid: number;
  /** Spawn → stream ACTIVE, in ms. */
  startupMs: number;
  logFile: string;
  /** Stops the engine and waits for its exit. Idempotent. */
  stop(): Promise<void>;
}

/** Starts the engine with a fresh, ACTIVE stream `migrator` of one shard. */
export async function startEmbeddedKinesis(opts: EmbeddedKinesisOptions): Promise<EmbeddedKinesis> {
  const workDir = join(resolvePath(opts.dataDir), 'kinesis');
  try {
    mkdirSync(workDir, { recursive: true });
  } catch (err) {
    throw new MigratorError(ExitCode.USAGE, `Cannot create ${workDir} for the embedded Kinesis engine: ${errorMessage(err)}.`, {
      hint: 'Point --data-dir at a writable directory.',
      cause: err,
    });
  }
  const logFile = join(workDir, 'kinesis-local.log');
  const logStream = createWriteStream(logFile, { flags: 'w' });
  logStream.on('error', () => undefined);
  const closeLog = () => new Promise<void>((r) => logStream.end(() => r()));
  const failStart = (what: string, output: string, cause?: unknown) =>
    new MigratorError(ExitCode.STREAM_FAILED, `The embedded Kinesis engine ${what}. Its output:\n${output || '(none)'}`, {
      hint: `See ${logFile}. Or use a Kinesis data stream instead (--kinesis-stream).`,
      cause,
    });
  /** Set once started: an exit before that is a startup failure, reported by the startup itself. */
  let ready = false;
  let engine: KinesisLocalProcess;
  try {
    engine = await launchKinesisLocal({
      region: EMBEDDED_REGION,
      cwd: workDir,
      // Own process group: a Ctrl-C at the terminal (SIGINT to the foreground group) reaches only
      // the migrator, which then stops gracefully (see the module comment).
      detached: true,
      startTimeoutMs: opts.startTimeoutMs ?? 60_000,
      tailLines: 40,
      onOutput: (c) => logStream.write(c),
      startError: (what, output) => failStart(what, output),
      onExit: (exitInfo) => {
        if (!ready) return;
        opts.log.error({ pid: engine.pid, exit: exitInfo, logFile }, 'the embedded Kinesis engine exited unexpectedly');
        opts.onUnexpectedExit?.(`the embedded Kinesis engine (kinesis-local, pid ${String(engine.pid)}) exited unexpectedly (${exitInfo}); its log: ${logFile}`);
      },
    });
  } catch (err) {
    await closeLog();
    throw err;
  }
  let stopPromise: Promise<void> | undefined;
  const stop = (): Promise<void> => (stopPromise ??= engine.stop({ closeStdin: true }).then(closeLog));
  try {
    const shardIds = await createFreshStream(engine, opts, failStart);
    ready = true;
    const startupMs = Math.round(performance.now() - engine.spawnedAt);
    opts.log.debug({ pid: engine.pid, endpoint: engine.endpoint, tlsPort: engine.tlsPort, startupMs, logFile }, 'embedded Kinesis engine started');
    return { endpoint: engine.endpoint, client: engine.client, streamName: EMBEDDED_STREAM_NAME, shardIds, pid: engine.pid, startupMs, logFile, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** A fresh engine without persistence has no streams: the stream is always new. Returns its open shard ids. */
async function createFreshStream(
  engine: KinesisLocalProcess,
  opts: EmbeddedKinesisOptions,
  failStart: (what: string, output: string, cause?: unknown) => MigratorError,
): Promise<string[]> {
  const remainingMs = engine.spawnedAt + (opts.startTimeoutMs ?? 60_000) - performance.now();
  try {
    await createStreamAndWait(engine.client, EMBEDDED_STREAM_NAME, EMBEDDED_SHARD_COUNT, Math.max(1000, remainingMs));
  } catch (err) {
    throw failStart(`could not create its stream: ${errorMessage(err)}`, engine.outputTail(), err);
  }
  const shardIds = (await listAllShards(engine.client, EMBEDDED_STREAM_NAME)).filter((s) => s.open).map((s) => s.shardId);
  if (engine.exited) throw failStart('exited during startup', engine.outputTail());
  return shardIds;
}

// -------------------------------------------------------------------------------------------------
// Restarting the pipeline on a fresh stream

export interface RestartFromTargetOptions {
  store: StateStore;
  migrationId: string;
  /** Open shard ids of the new stream. */
  shardIds: readonly string[];
  log: Logger;
  /** Lease grace (default: the store's). */
  graceMs?: number;
  /** Longest wait for a lease of a previous run to expire (default 5 min). */
  maxLeaseWaitMs?: number;
}

export interface RestartFromTargetResult {
  /** Where capture restarts: after this position, or (null) from the migration's resume point. */
  captureFrom: EventPosition | null;
  /** The capture checkpoint was kept (nothing was ever put into a stream). */
  keptCaptureCheckpoint: boolean;
  /** Leases of earlier runs that were released. */
  releasedLeases: number;
}


/**
 * Waits until no other live process holds a shard lease of the migration, then frees them all.
 * A lease of a dead process on this machine is freed at once; any other one is waited for until
 * it expired (plus the grace). A lease that is renewed meanwhile belongs to a live process:
 * STATE_CONFLICT (two migrators must not run the same migration).
 */
async function freeLeases(o: RestartFromTargetOptions): Promise<number> {
  const grace = o.graceMs ?? DEFAULT_LEASE_GRACE_MS;
  const deadline = Date.now() + (o.maxLeaseWaitMs ?? 5 * 60_000);
  const seen = new Map<string, { owner: string; epoch: number; expiresAt: number }>();
  for (let announced = false; ; ) {
    const now = Date.now();
    const held = (await o.store.listShards(o.migrationId)).filter(
      (d) => d.lease.owner !== null && d.lease.expiresAt.getTime() + grace > now && !isDeadLocalOwner(d.lease.owner),
    );
    if (held.length === 0) break;
    for (const d of held) {
      const before = seen.get(d._id);
      if (before && before.owner === d.lease.owner && before.epoch === d.lease.epoch && before.expiresAt + grace <= now) {
        throw new MigratorError(
          ExitCode.STATE_CONFLICT,
          `Another migrator process (${String(d.lease.owner)}) is running migration ${o.migrationId}: it keeps renewing the lease of ${d.shardId}.`,
          { hint: 'Stop the other process first: one migration runs in one full-migrate at a time.' },
        );
      }
      seen.set(d._id, { owner: d.lease.owner!, epoch: d.lease.epoch, expiresAt: d.lease.expiresAt.getTime() });
    }
    const until = Math.max(...held.map((d) => d.lease.expiresAt.getTime() + grace));
    if (until > deadline) {
      throw new MigratorError(ExitCode.STATE_CONFLICT, `Shard leases of migration ${o.migrationId} are held until ${new Date(until).toISOString()}.`, {
        hint: 'Another migrator process may be running this migration: stop it, or rerun once its leases expired.',
      });
    }
    if (!announced) {
      announced = true;
      o.log.info(
        { owners: [...new Set(held.map((d) => d.lease.owner))], waitMs: until - now },
        'waiting for the apply leases of a previous run to expire',
      );
    }
    await sleep(Math.max(50, until - now + 50));
  }
  const freed = await o.store.freeShardLeasesOfDeadRun(o.migrationId);
  // The capture lease of the dead run too (the data-dir lock says no other process uses it).
  const captureLease = await o.store.getCaptureLease(o.migrationId);
  if (captureLease) await o.store.releaseLease(captureLease);
  return freed;
}

/** The last applied position of a shard's checkpoint, if it has one. */
function appliedPosition(d: ShardDoc): (EventPosition & { pos: string }) | undefined {
  const cp = d.checkpoint;
  if (!cp?.ct || !cp.rt) return undefined;
  return { ct: cp.ct, rt: cp.rt, pos: cp.pos ?? positionKey({ ct: cp.ct, rt: cp.rt }) };
}

/**
 * Points capture and apply at a NEW, EMPTY stream (the embedded engine's, created on every start).
 * Call it before capture and apply start.
 *
 * INVARIANT (why no change is lost, even when the whole machine crashed and the old stream with
 * everything in it is gone): let P be the minimum, over the shards, of the last position apply
 * acknowledged on the target (the apply checkpoints live in the state store, written only after
 * the target acknowledged the writes they cover). Every change at or before P is on the target.
 * Capture restarts right after P (or, when some shard applied nothing yet, from the migration's
 * resume point, which precedes every change not yet on the target), so every change after P is
 * read again from the source's change-stream history — which must still hold it (else capture
 * fails with HISTORY_LOST, never silently) — and put into the new stream. Apply starts each shard
 * of the new stream at its start (sequence number '0' = TRIM_HORIZON) with position P and skips
 * envelopes at or before it; replaying what a shard applied after P is idempotent.
 *
 * This is the ONE place where the capture checkpoint may move backwards (the state store's
 * saveCaptureCheckpoint never lets it), by overwriting it
 * (StateStore.rewindCaptureCheckpointForNewStream / dropCaptureCheckpointForNewStream). It is safe because the checkpoint only
 * says "everything up to here is in the stream", and that stream is gone: the new one holds
 * nothing, so the only true statement is about the target, i.e. P; duplicates this causes are
 * de-duplicated by apply (by position).
 *
 * During the initial load nothing is applied yet: capture restarts from the resume point, and the
 * load itself restarts (with --drop) anyway.
 *
 * Apply's sequence numbers refer to the old stream and are meaningless on the new one, so each
 * checkpoint keeps (only) P with the sequence number '0' (StateStore.rewindApplyCheckpointForNewStream,
 * the one write that may move an apply checkpoint backwards); shard documents of shards the new stream
 * does not have are removed (they would pin every later restart to their old position).
 */
export async function restartFromTarget(o: RestartFromTargetOptions): Promise<RestartFromTargetResult> {
  const { store, migrationId, log } = o;
  const releasedLeases = await freeLeases(o);
  const docs = await store.listShards(migrationId);
  // Shards that ended (resharding of a real stream) applied everything they will ever hold.
  const open = docs.filter((d) => !d.checkpoint?.shardEnded);
  let captureFrom: (EventPosition & { pos: string }) | null = null;
  if (open.length > 0 && open.every((d) => appliedPosition(d) !== undefined)) {
    for (const d of open) {
      const p = appliedPosition(d)!;
      if (captureFrom === null || p.pos < captureFrom.pos) captureFrom = p;
    }
  }

  let keptCaptureCheckpoint = false;
  const cc = await store.getCaptureCheckpoint(migrationId);
  if (captureFrom) {
    await store.rewindCaptureCheckpointForNewStream(migrationId, captureFrom);
  } else if (cc && !(cc.counters.events ?? 0) && !(cc.counters.markers ?? 0)) {
    // Capture never sent anything: no change up to its checkpoint can be missing from the target.
    // Keeping it spares an idle source's history a restart from the (old) resume point.
    keptCaptureCheckpoint = true;
  } else if (cc) {
    // Nothing applied yet: capture starts over from the migration's resume point.
    await store.dropCaptureCheckpointForNewStream(migrationId);
  }

  const fresh = new Set(o.shardIds);
  for (const d of docs) {
    if (!fresh.has(d.shardId)) await store.forgetShardOfOldStream(migrationId, d.shardId);
    else await store.rewindApplyCheckpointForNewStream(migrationId, d.shardId, captureFrom);
  }
  const at = captureFrom ? `${captureFrom.ct.t},${captureFrom.ct.i}` : keptCaptureCheckpoint ? 'its checkpoint (nothing captured yet)' : 'the resume point';
  log.info({ captureFrom: at, releasedLeases }, 'new embedded stream: capture restarts after the last change applied to the target');
  return { captureFrom: captureFrom ? { ct: captureFrom.ct, rt: captureFrom.rt } : null, keptCaptureCheckpoint, releasedLeases };
}
