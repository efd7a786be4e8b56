import type { CommandModule } from 'yargs';
import { BSON, Timestamp, type Document } from 'mongodb';
import { requireEndpoint } from '../../config/load.js';
import { runCapture, type CaptureStart } from '../../source/capture-runner.js';
import { UsageError } from '../../util/errors.js';
import { parseDuration } from '../../util/duration.js';
import { commandContext } from '../context.js';
import { Resources, namespaceRules, requireStream } from '../resources.js';
import { shutdownSignal } from '../shutdown.js';
import { metricsOptions } from '../../config/options.js';
import { startObservability, type MetricsArgs } from '../observability.js';

interface CaptureArgs extends MetricsArgs {
  'resume-token'?: string;
  'start-at'?: string;
  'cdc-only'?: boolean;
  'checkpoint-every'?: number;
  'checkpoint-interval'?: string;
  'lease-ttl'?: string;
}

/** `--start-at`: `T,I` (a BSON timestamp) or `T` (seconds since the epoch). */
export function parseStartAt(text: string): Timestamp {
  const m = /^(\d+)(?:,(\d+))?$/.exec(text.trim());
  if (!m) throw new UsageError(`Invalid --start-at "${text}".`, 'Give an operation time as SECONDS or SECONDS,INCREMENT.');
  return new Timestamp({ t: Number(m[1]), i: Number(m[2] ?? 0) });
}

export function parseResumeToken(text: string): Document {
  try {
    const v = BSON.EJSON.parse(text, { relaxed: false }) as Document;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v;
  } catch (err) {
    throw new UsageError(
      `Invalid --resume-token: ${err instanceof Error ? err.message : String(err)}.`,
      'Give the token as JSON, e.g. {"_data":"8266…"}.',
    );
  }
}

/** `migrator capture`: source change stream → Kinesis, continuously, from its checkpoint. */
export const captureCommand: CommandModule<object, CaptureArgs> = {
  command: 'capture',
  describe: 'Capture source changes into the Kinesis stream, continuously, resuming from the checkpoint',
  builder: (y) =>
    y
      .option('resume-token', { type: 'string', describe: 'Start after this resume token (JSON) when there is no checkpoint' })
      .option('start-at', { type: 'string', describe: 'Start at this operation time (SECONDS[,INCREMENT]) when there is no checkpoint' })
      .option('cdc-only', {
        type: 'boolean',
        default: false,
        describe: 'No full migration behind this --migration-id (plain CDC): without a checkpoint, start now instead of waiting for full-migrate to record the resume point',
      })
      .option('checkpoint-every', { type: 'number', default: 1000, describe: 'Save the checkpoint every N events…' })
      .option('checkpoint-interval', { type: 'string', default: '1s', describe: '…or this often' })
      .option('lease-ttl', { type: 'string', default: '30s', describe: 'Capture lease time-to-live: one capture per migration is active, others stand by and take over this long after it dies' })
      .options(metricsOptions)
      .conflicts('resume-token', 'start-at'),
  handler: async (argv) => {
    const { config, log } = commandContext(argv as never);
    const source = requireEndpoint(config, 'source');
    const streamName = requireStream(config);
    const start: CaptureStart = {};
    if (argv['resume-token']) start.rt = parseResumeToken(argv['resume-token']);
    if (argv['start-at']) start.ct = parseStartAt(argv['start-at']);
    const intervalMs = parseDuration(argv['checkpoint-interval'] ?? '1s');
    if (!intervalMs) throw new UsageError(`Invalid --checkpoint-interval "${argv['checkpoint-interval']}".`);
    const leaseTtlMs = parseDuration(argv['lease-ttl'] ?? '30s');
    if (!leaseTtlMs || leaseTtlMs < 1000) throw new UsageError(`Invalid --lease-ttl "${argv['lease-ttl']}".`, 'Give a duration of at least 1s, e.g. 30s.');
    // Ready while this process holds the capture lease and reads the change stream (a standby is not).
    const obs = await startObservability(argv, { command: 'capture', migrationId: config.migrationId, log, gating: ['capture'] });
    const res = new Resources();
    res.onConnect = obs.watchDatabase;
    const shutdown = shutdownSignal((name) => log.info({ signal: name }, 'stopping capture: flushing and checkpointing'));
    try {
      const sourceClient = await res.connect('source', config, source);
      const store = await res.stateStore(config);
      obs.useStore(store, config.migrationId);
      await runCapture({
        source: sourceClient,
        store,
        migrationId: config.migrationId,
        rules: namespaceRules(config),
        kinesis: res.kinesis(config),
        streamName,
        // Without flags: the checkpoint, else the migration's recorded resume point (waited for
        // while full-migrate has not recorded it), else — with --cdc-only — now. See startPoint().
        start: start.rt || start.ct ? start : undefined,
        cdcOnly: argv['cdc-only'],
        // Beside full-migrate: exit 0 once the migration is COMPLETED (plain CDC has no phase).
        exitWhenCompleted: !argv['cdc-only'],
        leaseTtlMs,
        checkpointEveryEvents: argv['checkpoint-every'],
        checkpointIntervalMs: intervalMs,
        signal: shutdown.signal,
        log,
        onProgress: (p) => log.debug({ events: p.events, bytes: p.bytes }, 'capture checkpoint'),
      });
      // Stopped by SIGINT/SIGTERM, or the migration is COMPLETED: flushed and checkpointed, a clean
      // exit 0 (a rerun resumes, or, after COMPLETED, exits 0 again at once).
    } finally {
      await obs.close();
      await res.close();
      // Signal handling ends only after the resources are closed: a SIGTERM during the close (e.g.
      // `docker stop` right after the command finished by itself) is then handled (a first one is a
      // no-op, a second exits 130) instead of killing the process by the default action (no exit 0).
      shutdown.dispose();
    }
  },
};
