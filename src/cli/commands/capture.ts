import type { CommandModule } from 'yargs';
import { BSON, Timestamp, type Document } from 'mongodb';
import { requireEndpoint } from '../../config/load.js';
import { runCapture, type CaptureStart } from '../../source/capture-runner.js';
import { UsageError } from '../../util/errors.js';
import { parseDuration } from '../../util/duration.js';
import { commandContext } from '../context.js';
import { Resources, namespaceRules, requireStream } from '../resources.js';
import { shutdownSignal } from '../shutdown.js';

interface CaptureArgs {
  'resume-token'?: string;
  'start-at'?: string;
  'checkpoint-every'?: number;
  'checkpoint-interval'?: string;
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
      .option('checkpoint-every', { type: 'number', default: 1000, describe: 'Save the checkpoint every N events…' })
      .option('checkpoint-interval', { type: 'string', default: '1s', describe: '…or this often' })
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
    const res = new Resources();
    const shutdown = shutdownSignal((name) => log.info({ signal: name }, 'stopping capture: flushing and checkpointing'));
    try {
      const sourceClient = await res.connect('source', config, source);
      const store = await res.stateStore(config);
      // Without flags, a migration's recorded resume point (initial-load / full-migrate) is where
      // capture starts when it has no checkpoint yet: never "now" when earlier changes are owed.
      if (!start.rt && !start.ct) {
        const rp = (await store.getMigration(config.migrationId))?.resumePoint;
        if (rp?.rt) start.rt = rp.rt;
        else if (rp?.ct) start.ct = rp.ct;
      }
      await runCapture({
        source: sourceClient,
        store,
        migrationId: config.migrationId,
        rules: namespaceRules(config),
        kinesis: res.kinesis(config),
        streamName,
        start,
        checkpointEveryEvents: argv['checkpoint-every'],
        checkpointIntervalMs: intervalMs,
        signal: shutdown.signal,
        log,
        onProgress: (p) => log.debug({ events: p.events, bytes: p.bytes }, 'capture checkpoint'),
      });
      // Stopped by SIGINT/SIGTERM: flushed and checkpointed, a clean exit 0 (a rerun resumes).
    } finally {
      shutdown.dispose();
      await res.close();
    }
  },
};
