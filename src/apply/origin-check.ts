/**
 * NO SILENT GAP: a shard read from its beginning (no checkpoint) that was not created by
 * resharding must show this migration's first record to be an origin with `sent` 0 (capture
 * broadcasts one before anything else). A first own record that is data, or an origin after
 * events already sent, means the stream's retention removed the start of the migration (e.g. a
 * load that outlasted it): HISTORY_LOST, never a silent loss. Untagged records (a capture of an
 * earlier build) and child shards (their start is in the parents) cannot be checked and are
 * let through. Origins themselves are never applied.
 */
import type { ChangeEnvelope, EventPosition } from '../model/change-envelope.js';
import type { ShardInfo } from '../transport/shard-map.js';
import { MigratorError } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';
import type { ApplyCounters } from './apply-status.js';

/** What the check reads and updates of a shard's state (ShardRun). */
export interface OriginCheckedShard {
  shardId: string;
  sequenceNumber: string | undefined;
  position: EventPosition | undefined;
  originChecked: boolean;
  counters: Pick<ApplyCounters, 'skipped'>;
}

/** Checks the shard's start once (see above); returns the envelopes without the origins (counted skipped). */
export async function checkOrigin(
  run: OriginCheckedShard,
  envelopes: ChangeEnvelope[],
  migrationId: string,
  streamShards: () => Promise<ShardInfo[]>,
): Promise<ChangeEnvelope[]> {
  if (!run.originChecked && envelopes.length > 0) {
    const fresh = run.sequenceNumber === undefined && run.position === undefined;
    const first = envelopes[0]!;
    if (!fresh || first.mig === undefined) run.originChecked = true;
    else {
      const me = (await streamShards()).find((s) => s.shardId === run.shardId);
      if (me && (me.parentShardId !== undefined || me.adjacentParentShardId !== undefined)) run.originChecked = true;
      else if (first.op === 'origin' && first.origin?.sent === 0) run.originChecked = true;
      else throw historyLost(run.shardId, first, migrationId);
    }
  }
  const rest = envelopes.filter((e) => e.op !== 'origin');
  run.counters.skipped += envelopes.length - rest.length;
  return rest;
}

function historyLost(shardId: string, first: ChangeEnvelope, migrationId: string): MigratorError {
  const what =
    first.op === 'origin'
      ? `a capture restart's origin (after ${first.origin?.sent} events already sent)`
      : `a ${first.op} event at clusterTime ${first.ct.getHighBits()}`;
  return new MigratorError(
    ExitCode.HISTORY_LOST,
    `Shard ${shardId}: the stream no longer holds the start of migration ${migrationId}: the first record it can read is ${what}, ` +
      'not the origin capture wrote before everything else. The stream\'s retention removed changes that were never applied.',
    {
      hint:
        'Start over with a new --migration-id (and --drop), after raising the stream\'s retention above the initial load\'s duration ' +
        '(aws kinesis increase-stream-retention-period).',
    },
  );
}
