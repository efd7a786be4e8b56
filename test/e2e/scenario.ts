// The end-to-end migration scenario shared by the profile e2e tests: writes during the copy and
// after it, kill -9 of full-migrate while it replicates, rerun, cutover --writes-stopped, verify.
import assert from 'node:assert/strict';
import { type ResultPromise } from 'execa';
import { MongoClient } from 'mongodb';
import type { KinesisLocal } from '../support/kinesis-local.js';
import { goToolPath } from '../support/go-tools.js';
import { runMigrator } from '../support/cli.js';
import { waitForPhase } from '../support/phases.js';
import { StateStore, type MigrationPhase } from '../../src/state/store.js';
import { spawnMigrator, cutoverAndWait } from '../support/full-migrate-process.js';


export interface Scenario {
  sourceUri: string;
  targetUri: string;
  kinesis: KinesisLocal;
  migrationId: string;
  /** More full-migrate flags (e.g. --drop). */
  extraArgs?: string[];
  /** One round of the source workload (called until the cutover); `n` counts rounds. */
  round: (src: MongoClient, n: number) => Promise<void>;
}

export interface ScenarioResult {
  rounds: number;
  /** stderr of every full-migrate run, for log assertions. */
  logs: string[];
}

export async function runKillRerunCutover(s: Scenario): Promise<ScenarioResult> {
  const src = new MongoClient(s.sourceUri);
  const dst = new MongoClient(s.targetUri);
  const store = await StateStore.open({ client: dst });
  const logs: string[] = [];
  try {
    const stream = s.kinesis.uniqueStreamName(s.migrationId);
    await s.kinesis.createStream(stream, 2);
    const common = ['--source-uri', s.sourceUri, '--target-uri', s.targetUri, '--kinesis-stream', stream, '--kinesis-endpoint', s.kinesis.endpoint, '--migration-id', s.migrationId];
    const args = [
      ...common, '--lease-ttl', '3s', '--mongodump-path', goToolPath('mongodump'), '--mongorestore-path', goToolPath('mongorestore'),
      '--data-dir', `/tmp/migrator-${s.migrationId}-${process.pid}`, '--log-format', 'json', ...(s.extraArgs ?? []),
    ];
    const start = () =>
      spawnMigrator(['full-migrate', ...args]);
    const phaseIs = (want: MigrationPhase[], proc: ResultPromise) => waitForPhase(store, s.migrationId, want, { proc, timeoutMs: 90_000 });

    let writing = true;
    let n = 0;
    const workload = (async () => {
      while (writing) {
        await s.round(src, n++);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();

    // Writes run from before the resume point, through the copy and replication.
    const first = start();
    await phaseIs(['CATCHING_UP', 'READY_FOR_CUTOVER'], first);
    await new Promise((r) => setTimeout(r, 1500));
    first.kill('SIGKILL');
    logs.push(String((await first).stderr));

    const second = start();
    await phaseIs(['READY_FOR_CUTOVER'], second);
    await new Promise((r) => setTimeout(r, 1000));
    writing = false;
    await workload;
    await cutoverAndWait(common);
    const done = await second;
    logs.push(String(done.stderr));
    assert.equal(done.exitCode, 0, String(done.stderr).slice(-3000));
    const verify = await runMigrator(['verify', '--source-uri', s.sourceUri, '--target-uri', s.targetUri]);
    assert.equal(verify.exitCode, 0, verify.all);
    return { rounds: n, logs };
  } finally {
    await Promise.all([src.close(), dst.close()]);
  }
}
