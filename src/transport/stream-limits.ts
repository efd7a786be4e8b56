/**
 * Kinesis Data Streams service limits the transport respects, and the per-stream max record size.
 */
import { DescribeStreamSummaryCommand, type KinesisClient } from '@aws-sdk/client-kinesis';
import { streamParams } from '../model/stream-ref.js';

/** PutRecords: at most 500 records per call. */
export const PUT_RECORDS_MAX_RECORDS = 500;
/** PutRecords: at most 5 MiB per call (data + partition keys of all records). */
export const PUT_RECORDS_MAX_BYTES = 5 * 1024 * 1024;
/** Partition key: 1 to 256 characters. */
export const PARTITION_KEY_MAX_LENGTH = 256;
/** Default max record size (data + partition key) when the stream does not report one: 1 MiB. */
export const DEFAULT_MAX_RECORD_SIZE_BYTES = 1024 * 1024;
/** GetRecords: at most 10,000 records per call. */
export const GET_RECORDS_MAX_LIMIT = 10_000;
/** GetRecords: at most 5 calls per second per shard. */
export const GET_RECORDS_MIN_INTERVAL_MS = 200;

export interface StreamLimits {
  /** Max bytes of one record: data + UTF-8 partition key. */
  maxRecordSizeBytes: number;
  /** True when DescribeStreamSummary reported MaxRecordSizeInKiB, false when the default was assumed. */
  reported: boolean;
  openShardCount: number | undefined;
  streamStatus: string | undefined;
}

/**
 * Reads the stream's max record size with DescribeStreamSummary (`MaxRecordSizeInKiB`, settable
 * from 1024 to 10240 KiB with UpdateMaxRecordSize). Streams/emulators that do not report it get
 * the 1 MiB default. Observed with kinesis-local 0.6.2: the field is absent until
 * UpdateMaxRecordSize was called on the stream, after which it is reported (and enforced).
 */
export async function describeStreamLimits(
  client: KinesisClient,
  streamName: string,
  options: { signal?: AbortSignal } = {},
): Promise<StreamLimits> {
  const out = await client.send(new DescribeStreamSummaryCommand(streamParams(streamName)), {
    abortSignal: options.signal,
  });
  const summary = out.StreamDescriptionSummary;
  const kib = summary?.MaxRecordSizeInKiB;
  return {
    maxRecordSizeBytes: kib && kib > 0 ? kib * 1024 : DEFAULT_MAX_RECORD_SIZE_BYTES,
    reported: Boolean(kib && kib > 0),
    openShardCount: summary?.OpenShardCount,
    streamStatus: summary?.StreamStatus,
  };
}
