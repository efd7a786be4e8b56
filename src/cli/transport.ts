import type { KinesisClient } from '@aws-sdk/client-kinesis';
import type { MigratorConfig } from '../config/load.js';
import type { Logger } from '../util/logger.js';
import { requireStream, type Resources } from './resources.js';

export interface Transport {
  client: KinesisClient;
  streamName: string;
}

/** The Kinesis stream named by --kinesis-stream (real AWS, or --kinesis-endpoint). */
export async function openTransport(config: MigratorConfig, res: Resources, _log: Logger): Promise<Transport> {
  return { client: res.kinesis(config), streamName: requireStream(config) };
}
