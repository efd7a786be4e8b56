// The e2e tests' stack: a source and a target emulator, kinesis-local, and a client on each side,
// started before the suite's tests and stopped after them (node:test hooks of the calling suite).
import { after, before } from 'node:test';
import { MongoClient } from 'mongodb';
import { startMongoEmulator, type MongoEmulator, type MongoEmulatorOptions } from '../../packages/mongo-emulator/src/index.js';
import { startKinesisLocal, type KinesisLocal } from './kinesis-local.js';
import { ensureGoTools } from './go-tools.js';

export interface LocalStack {
  source: MongoEmulator;
  target: MongoEmulator;
  kinesis: KinesisLocal;
  /** Clients on the source and the target. */
  src: MongoClient;
  dst: MongoClient;
}

/**
 * Call inside `describe`: the returned object is filled in once the suite's `before` ran.
 * `emulators` passes options to the source and target emulators (e.g. `ttlMonitorSleepSecs`).
 */
export function useLocalStack(
  tools?: Parameters<typeof ensureGoTools>[0],
  emulators: { source?: MongoEmulatorOptions; target?: MongoEmulatorOptions } = {},
): LocalStack {
  const stack = {} as LocalStack;
  before(async () => {
    await ensureGoTools(tools);
    [stack.source, stack.target, stack.kinesis] = await Promise.all([startMongoEmulator(emulators.source), startMongoEmulator(emulators.target), startKinesisLocal()]);
    stack.src = new MongoClient(stack.source.uri);
    stack.dst = new MongoClient(stack.target.uri);
  });
  after(async () => {
    await Promise.all([stack.src?.close(), stack.dst?.close()]);
    await Promise.all([stack.source?.stop(), stack.target?.stop(), stack.kinesis?.stop()]);
  });
  return stack;
}
