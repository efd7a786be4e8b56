import type { KinesisClient } from '@aws-sdk/client-kinesis';
import type { MigratorConfig } from '../config/load.js';
import type { StateStore } from '../state/store.js';
import { restartFromTarget, startEmbeddedKinesis } from '../transport/embedded-kinesis.js';
import { MigratorError, UsageError } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';
import type { Logger } from '../util/logger.js';
import { requireStream, type Resources } from './resources.js';
import { sleep } from '../util/retry.js';

/**
 * - `kinesis`: the Kinesis data stream named by --kinesis-stream (real AWS, or --kinesis-endpoint);
 * - `embedded`: no --kinesis-stream: a kinesis-local engine started by this process, with a fresh
 *   one-shard stream on every start (src/transport/embedded-kinesis.ts). Only for full-migrate:
 *   the stream lives and dies with the process, so commands that hand the stream over to another
 *   process (`capture`, `apply`, `initial-load`) need --kinesis-stream.
 */
export type TransportKind = 'kinesis' | 'embedded';

/** Key in the migration document's `config` recording that the migration runs embedded. */
export const TRANSPORT_KEY = 'transport';

export interface Transport {
  kind: TransportKind;
  client: KinesisClient;
  streamName: string;
  /** Stops what the transport started (the embedded engine). Idempotent; also run by `res.close()`. */
  stop(): Promise<void>;
}

export interface TransportOptions {
  /**
   * Whether the command may run on the embedded transport (default false). initial-load may not:
   * it stops after the copy with the changes made meanwhile waiting in the stream for a later
   * `capture`/`apply`/`full-migrate`, and an embedded stream ends with the process. (A later
   * embedded full-migrate would still lose nothing — it re-reads them from the source — but
   * `migrator capture` would continue from a checkpoint that only the lost stream backed.)
   */
  allowEmbedded?: boolean;
}

/** Decides the transport from the configuration alone (before connecting anything). */
export function transportKind(config: MigratorConfig, opts: TransportOptions = {}): TransportKind {
  if (config.kinesis.stream) return 'kinesis';
  if (!opts.allowEmbedded) {
    throw new UsageError(
      'Missing --kinesis-stream: initial-load leaves the changes made during the copy in the stream for a later run, ' +
        'and the embedded stream used without --kinesis-stream ends with the process.',
      'For a single-machine migration run `migrator full-migrate` without --kinesis-stream; to run the steps separately, ' +
        'name a Kinesis data stream (MIGRATOR_KINESIS_STREAM; --kinesis-endpoint for a local one).',
    );
  }
  if (config.kinesis.endpoint) {
    throw new UsageError(
      '--kinesis-endpoint needs --kinesis-stream: without a stream name the migrator runs its own embedded Kinesis engine.',
      'Name the stream at that endpoint (--kinesis-stream), or drop --kinesis-endpoint.',
    );
  }
  return 'embedded';
}

/**
 * Opens the transport of full-migrate / initial-load. The embedded one also prepares the state for
 * its fresh stream (restartFromTarget: capture restarts after the last change applied to the
 * target), so it needs the state store and the migration id, and must run before capture/apply.
 */
export async function openTransport(
  config: MigratorConfig,
  res: Resources,
  log: Logger,
  ctx: TransportOptions & { store?: StateStore; migrationId?: string } = {},
): Promise<Transport> {
  const { store, migrationId } = ctx;
  if (transportKind(config, ctx) === 'kinesis') {
    const streamName = requireStream(config);
    const m = store && migrationId !== undefined ? await store.getMigration(migrationId) : null;
    if (m?.config?.[TRANSPORT_KEY] === 'embedded' && m.phase !== 'COMPLETED') {
      // Its capture checkpoint was backed by the embedded stream, which is gone: continuing on
      // another stream from that checkpoint would skip the changes that stream held.
      throw new MigratorError(
        ExitCode.STATE_CONFLICT,
        `Migration ${migrationId} runs on the embedded Kinesis engine (it was started without --kinesis-stream), so it cannot continue on stream ${streamName}.`,
        { hint: 'Rerun full-migrate without --kinesis-stream / --kinesis-endpoint, or start over with a new --migration-id.' },
      );
    }
    log.info({ transport: 'kinesis', stream: streamName, endpoint: config.kinesis.endpoint ?? 'AWS', region: config.kinesis.region }, 'transport: Kinesis data stream');
    return { kind: 'kinesis', client: res.kinesis(config), streamName, stop: async () => undefined };
  }

  if (!store || migrationId === undefined) throw new Error('openTransport: the embedded transport needs the state store and the migration id');
  const engine = await startEmbeddedKinesis({
    dataDir: config.dataDir,
    log,
    onUnexpectedExit: (description) => void dieWithEngine(description, store, migrationId, log),
  });
  res.add(engine, (e) => e.stop());
  log.info(
    { transport: 'embedded', endpoint: engine.endpoint, pid: engine.pid, stream: engine.streamName, startupMs: engine.startupMs, log: engine.logFile },
    'transport: embedded Kinesis engine (kinesis-local; no --kinesis-stream)',
  );
  try {
    const m = await store.getMigration(migrationId);
    if (m?.phase !== 'COMPLETED') {
      await restartFromTarget({ store, migrationId, shardIds: engine.shardIds, log });
      // Marks the migration as embedded (see the check above); creates it if new.
      await store.createMigration(migrationId, { config: { streamName: engine.streamName, [TRANSPORT_KEY]: 'embedded' } });
      await store.setConfigField(migrationId, TRANSPORT_KEY, 'embedded');
    }
  } catch (err) {
    await engine.stop();
    throw err;
  }
  return { kind: 'embedded', client: engine.client, streamName: engine.streamName, stop: () => engine.stop() };
}

/**
 * The embedded engine died under a running migration: capture and apply would retry their Kinesis
 * calls forever, and a graceful stop would wait forever to flush into it. Exit like a crash, which
 * the embedded mode is built to survive (the next run restarts from what the target holds), after
 * recording why for `migrator status`.
 */
async function dieWithEngine(description: string, store: StateStore, migrationId: string, log: Logger): Promise<void> {
  const err = new MigratorError(ExitCode.STREAM_FAILED, `${description}.`, {
    hint: 'Rerun the same command to continue: nothing is lost, capture restarts after the last change applied to the target.',
  });
  log.fatal({ err: err.message, hint: err.hint }, 'cannot continue without the embedded Kinesis engine');
  const record = (async () => {
    await store.recordError(migrationId, err);
    await store.setPhase(migrationId, 'FAILED');
  })().catch(() => undefined);
  await Promise.race([record, sleep(3000)]); // at most 3 s: the process exits either way
  process.exit(ExitCode.STREAM_FAILED);
}
