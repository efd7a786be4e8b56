/** The ordered producer's counters and the stats snapshot it reports (ordered-producer.ts). */

export interface ProducerStats {
  putRecordsCalls: number;
  /** Records acknowledged by Kinesis (chunks count one each). */
  recordsSent: number;
  /** Payloads acknowledged (a broadcast counts once per shard copy). */
  payloadsSent: number;
  /** Record bytes acknowledged (data + partition key). */
  bytesSent: number;
  /** Raw payload bytes acknowledged. */
  payloadBytesSent: number;
  /** payloadsSent / recordsSent over aggregate and single records (chunks excluded). */
  payloadsPerRecord: number;
  /** Record re-sends after a failure (per-record or whole call). */
  retries: number;
  /** Of which throttling (ProvisionedThroughputExceeded, ThrottlingException, ...). */
  throttles: number;
  /** Whole PutRecords calls that failed. */
  callErrors: number;
  /** Records acknowledged in another shard than expected (resharding detected). */
  misroutedRecords: number;
  /** Misrouted records whose payloads had to be re-sent. */
  resentRecords: number;
  /** Records whose call failed ambiguously before a reshard and that were found stored (not re-sent). */
  resolvedAmbiguous: number;
  shardMapRefreshes: number;
  chunkedPayloads: number;
  chunkRestarts: number;
  compressedRecords: number;
  bufferedBytes: number;
  maxBufferedBytesSeen: number;
}

/** What the producer counts as it goes; `producerStats` derives the reported snapshot. */
export interface ProducerCounters {
  putRecordsCalls: number;
  recordsSent: number;
  payloadsSent: number;
  bytesSent: number;
  payloadBytesSent: number;
  aggregatedRecords: number;
  aggregatedPayloads: number;
  retries: number;
  throttles: number;
  callErrors: number;
  misroutedRecords: number;
  resentRecords: number;
  resolvedAmbiguous: number;
  shardMapRefreshes: number;
  chunkedPayloads: number;
  chunkRestarts: number;
  compressedRecords: number;
}

export function newProducerCounters(): ProducerCounters {
  return {
    putRecordsCalls: 0,
    recordsSent: 0,
    payloadsSent: 0,
    bytesSent: 0,
    payloadBytesSent: 0,
    aggregatedRecords: 0,
    aggregatedPayloads: 0,
    retries: 0,
    throttles: 0,
    callErrors: 0,
    misroutedRecords: 0,
    resentRecords: 0,
    resolvedAmbiguous: 0,
    shardMapRefreshes: 0,
    chunkedPayloads: 0,
    chunkRestarts: 0,
    compressedRecords: 0,
  };
}

export function producerStats(c: ProducerCounters, buffer: { bufferedBytes: number; maxBufferedBytesSeen: number }): ProducerStats {
  const { aggregatedRecords, aggregatedPayloads, ...counted } = c;
  return {
    ...counted,
    payloadsPerRecord: aggregatedRecords === 0 ? 0 : aggregatedPayloads / aggregatedRecords,
    bufferedBytes: buffer.bufferedBytes,
    maxBufferedBytesSeen: buffer.maxBufferedBytesSeen,
  };
}
