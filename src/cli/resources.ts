import type { MongoClient } from 'mongodb';
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { requireState, type MigratorConfig } from '../config/load.js';
import { connect } from '../db/connect.js';
import { NamespaceRules } from '../model/namespace-filter.js';
import { StateStore } from '../state/store.js';
import { createKinesisClient } from '../transport/kinesis-client.js';
import { UsageError } from '../util/errors.js';

/** What a command opened, closed together in `finally`. */
export class Resources {
  private readonly closers: (() => Promise<unknown>)[] = [];
  /** Told of every database connected (the metrics server's /readyz pings them). */
  onConnect?: (role: string, client: MongoClient) => void;

  add<T>(value: T, close: (v: T) => Promise<unknown> | unknown): T {
    this.closers.push(async () => close(value));
    return value;
  }

  async connect(role: 'source' | 'target' | 'state store', config: MigratorConfig, endpoint = config[role === 'state store' ? 'state' : role]) {
    const e = role === 'state store' ? requireState(config) : endpoint;
    if (!e) throw new UsageError(`Missing --${role}-uri.`);
    const client = await connect(role, e, config.connectTimeoutMs);
    this.onConnect?.(role, client);
    return this.add(client, (c) => c.close());
  }

  /** The state store on --state-uri (default: the target). Reuses `targetClient` when they are the same. */
  async stateStore(config: MigratorConfig, targetClient?: MongoClient): Promise<StateStore> {
    const sameAsTarget = !config.state && targetClient;
    const client = sameAsTarget ? targetClient : await this.connect('state store', config);
    return StateStore.open({ client, dbName: config.stateDb });
  }

  kinesis(config: MigratorConfig): KinesisClient {
    return this.add(
      createKinesisClient({ region: config.kinesis.region, endpoint: config.kinesis.endpoint, httpHandler: config.kinesis.http }),
      (k) => k.destroy(),
    );
  }

  async close(): Promise<void> {
    for (const c of this.closers.reverse()) await c().catch(() => undefined);
    this.closers.length = 0;
  }
}

export function namespaceRules(config: MigratorConfig): NamespaceRules {
  return new NamespaceRules({
    include: config.namespaces.include,
    exclude: config.namespaces.exclude,
    map: config.namespaces.map,
    stateDb: config.stateDb,
  });
}

export function requireStream(config: MigratorConfig): string {
  if (!config.kinesis.stream) {
    throw new UsageError('Missing --kinesis-stream.', 'Name the Kinesis data stream (MIGRATOR_KINESIS_STREAM).');
  }
  return config.kinesis.stream;
}
