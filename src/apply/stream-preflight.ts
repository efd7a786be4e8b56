/**
 * The apply side's check that its Kinesis stream exists and is readable before anything else
 * (a wrong stream is reported at once, not after the initial load), and the STREAM_FAILED
 * message for any error of reading the stream.
 */
import { DescribeStreamSummaryCommand, type KinesisClient } from '@aws-sdk/client-kinesis';
import { streamParams } from '../model/stream-ref.js';
import { assertStreamActive, classifyError, errorName } from '../transport/stream-errors.js';
import { MigratorError, errorMessage } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';

/**
 * The stream is ACTIVE (or UPDATING: resharding keeps it readable); a clear STREAM_FAILED
 * otherwise. Returns quietly when `signal` aborted the call (the caller is stopping).
 * https://docs.aws.amazon.com/kinesis/latest/APIReference/API_DescribeStreamSummary.html
 */
export async function checkStreamReadable(kinesis: KinesisClient, name: string, signal: AbortSignal): Promise<void> {
  try {
    const out = await kinesis.send(new DescribeStreamSummaryCommand(streamParams(name)), { abortSignal: signal });
    assertStreamActive(name, out.StreamDescriptionSummary?.StreamStatus);
  } catch (err) {
    if (err instanceof MigratorError) throw err;
    if (signal.aborted) return;
    throw streamError(err, name);
  }
}

/** STREAM_FAILED naming the stream and what to check: not found, refused (permissions), unreachable. */
export function streamError(err: unknown, stream: string): MigratorError {
  const name = errorName(err);
  if (name === 'ResourceNotFoundException') {
    return new MigratorError(ExitCode.STREAM_FAILED, `Kinesis stream '${stream}' not found: ${errorMessage(err)}`, {
      hint: 'Check --kinesis-stream, --region and --kinesis-endpoint (capture creates nothing: create the stream first).',
      cause: err,
    });
  }
  const kind = classifyError(err);
  if (kind === 'fatal') {
    return new MigratorError(ExitCode.STREAM_FAILED, `Kinesis refused a request on stream '${stream}': ${name}: ${errorMessage(err)}`, {
      hint: 'Check the stream name, region and the credentials\' permissions (kinesis:DescribeStreamSummary, ListShards, GetShardIterator, GetRecords).',
      cause: err,
    });
  }
  return new MigratorError(ExitCode.STREAM_FAILED, `Cannot read Kinesis stream '${stream}': ${name}: ${errorMessage(err)}`, {
    hint: 'Check that Kinesis (or --kinesis-endpoint) is reachable from here.',
    cause: err,
  });
}
