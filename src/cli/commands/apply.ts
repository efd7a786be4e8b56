import type { CommandModule } from 'yargs';
import { requireEndpoint } from '../../config/load.js';
import { defaultOwnerId, runApply, type ApplyStatus } from '../../apply/apply-runner.js';
import { formatDuration, parseDuration } from '../../util/duration.js';
import { UsageError } from '../../util/errors.js';
import { printJson, printReport } from '../../util/output.js';
import { commandContext } from '../context.js';
import { Resources, namespaceRules, requireStream } from '../resources.js';
import { metricsOptions } from '../../config/options.js';
import { startObservability, type MetricsArgs } from '../observability.js';

interface ApplyArgs extends MetricsArgs {
  'lease-ttl'?: string;
  'max-shards'?: number;
  'until-caught-up'?: boolean;
  'cdc-only'?: boolean;
  'conflict-retry-limit'?: string;
  'progress-interval'?: string;
  json?: boolean;
}

function duration(flag: string, value: string | undefined, fallbackMs: number, minMs: number): number {
  if (value === undefined) return fallbackMs;
  const ms = parseDuration(value);
  if (ms === undefined || ms < minMs) {
    throw new UsageError(`Invalid --${flag}: expected a duration of at least ${formatDuration(minMs)}, like 30s or 2m (got "${value}").`);
  }
  return ms;
}

function formatStatus(s: ApplyStatus, stopReason: string): string {
  const t = s.totals;
  const lines = [
    `apply ${stopReason === 'caught-up' ? 'caught up' : stopReason === 'completed' ? 'done: the migration is COMPLETED' : 'stopped'}: ${s.sessionEvents} events processed in this run`,
    `  totals: ${t.events} events, ${t.upserts} upserts, ${t.updates} updates, ${t.deletes} deletes, ${t.ddl} DDL, ${t.skipped} skipped`,
  ];
  for (const sh of s.shards) {
    const c = sh.counters;
    lines.push(`  ${sh.shardId}: ${sh.state}${c ? `, ${c.events} events` : ''}${sh.sequenceNumber ? `, checkpoint ${sh.sequenceNumber}` : ''}`);
  }
  return lines.join('\n');
}

/** `migrator apply`: apply the Kinesis stream to the target, continuously (or until caught up). */
export const applyCommand: CommandModule<object, ApplyArgs> = {
  command: 'apply',
  describe: 'Apply the change events of the Kinesis stream to the target (run several to share the shards)',
  builder: (y) =>
    y
      .option('lease-ttl', {
        type: 'string',
        default: '30s',
        describe: 'Shard lease duration; another process takes over a dead one\'s shards after it (renewed every third of it)',
      })
      .option('max-shards', { type: 'number', describe: 'Hold at most this many shards (default: every free shard)' })
      .option('until-caught-up', {
        type: 'boolean',
        default: false,
        describe: 'Exit 0 once every shard is read to its tip and applied (one-shot catch-up, CI)',
      })
      .option('conflict-retry-limit', {
        type: 'string',
        default: '60s',
        describe: 'How long a batch with duplicate-key conflicts is retried before apply fails',
      })
      .option('cdc-only', {
        type: 'boolean',
        default: false,
        describe: 'No full migration behind this --migration-id (plain CDC): apply at once instead of waiting for full-migrate to create the migration and finish its load',
      })
      .option('progress-interval', { type: 'string', default: '10s', describe: 'How often progress is logged' })
      .option('json', { type: 'boolean', default: false, describe: 'Print the final report as JSON' })
      .options(metricsOptions),
  handler: async (argv) => {
    const { config, log } = commandContext(argv as never);
    const targetEndpoint = requireEndpoint(config, 'target');
    const stream = requireStream(config);
    const leaseTtlMs = duration('lease-ttl', argv['lease-ttl'], 30_000, 1_000);
    const conflictRetryLimitMs = duration('conflict-retry-limit', argv['conflict-retry-limit'], 60_000, 0);
    const statusIntervalMs = duration('progress-interval', argv['progress-interval'], 10_000, 100);
    const maxShards = argv['max-shards'];
    if (maxShards !== undefined && (!Number.isInteger(maxShards) || maxShards < 1)) {
      throw new UsageError(`Invalid --max-shards: expected a positive integer (got ${String(maxShards)}).`);
    }
    const rules = namespaceRules(config);

    // Ready while this process holds at least one shard lease (not while it waits for the load or stands by).
    const obs = await startObservability(argv, { command: 'apply', migrationId: config.migrationId, log, gating: ['apply'] });
    const abort = new AbortController();
    const onSignal = (sig: NodeJS.Signals) => {
      log.info({ signal: sig }, 'signal received: finishing the batches being applied (send it again to force)');
      abort.abort();
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const res = new Resources();
    res.onConnect = obs.watchDatabase;
    try {
      const target = await res.connect('target', config, targetEndpoint);
      const store = await res.stateStore(config, target);
      obs.useStore(store, config.migrationId);
      const kinesis = res.kinesis(config);
      const ownerId = defaultOwnerId();
      log.info({ stream, migrationId: config.migrationId, ownerId, leaseTtlMs, maxShards }, 'apply starting');
      const result = await runApply({
        target,
        store,
        migrationId: config.migrationId,
        rules,
        kinesis,
        streamName: stream,
        ownerId,
        logger: log,
        leaseTtlMs,
        maxShards,
        signal: abort.signal,
        statusIntervalMs,
        progressLogIntervalMs: statusIntervalMs,
        stopWhenCaughtUp: argv['until-caught-up'],
        cdcOnly: argv['cdc-only'],
        // Beside full-migrate: exit 0 once the migration is COMPLETED (plain CDC has no phase).
        exitWhenCompleted: !argv['cdc-only'],
        conflictRetryLimitMs,
      });
      if (argv.json) printJson({ stopReason: result.stopReason, ...result.status });
      else printReport(formatStatus(result.status, result.stopReason));
      // SIGINT/SIGTERM is how a continuous apply is meant to stop (e.g. `docker stop`): the batches in
      // hand were finished and checkpointed, so it is a clean exit 0; a rerun continues from there.
      if (result.stopReason === 'interrupted') log.info('stopped by a signal: batches finished and checkpointed; rerun to continue');
    } finally {
      await obs.close();
      await res.close();
      // Signal handling ends only after the resources are closed: a SIGTERM during the close (e.g.
      // `docker stop` right after the command finished by itself) is then handled (a first one is a
      // no-op, a second exits 130) instead of killing the process by the default action (no exit 0).
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  },
};
