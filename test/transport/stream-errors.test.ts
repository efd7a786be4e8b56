import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assertStreamActive, classifyError, errorName, isRetryableStreamError, type ErrorKind } from '../../src/transport/stream-errors.js';
import { MigratorError } from '../../src/util/errors.js';
import { ExitCode } from '../../src/util/exit-codes.js';

const sdkError = (name: string, status?: number): unknown => Object.assign(new Error(name), { name, $metadata: status === undefined ? {} : { httpStatusCode: status } });

describe('classifyError', () => {
  const table: Array<[string, unknown, ErrorKind]> = [
    ['SDK abort', sdkError('AbortError'), 'aborted'],
    ['shard throughput exceeded', sdkError('ProvisionedThroughputExceededException', 400), 'throttle'],
    ['API throttling', sdkError('ThrottlingException', 400), 'throttle'],
    ['LimitExceeded', sdkError('LimitExceededException', 400), 'throttle'],
    ['KMS throttling', sdkError('KMSThrottlingException', 400), 'throttle'],
    ['per-record ErrorCode string', 'ProvisionedThroughputExceededException', 'throttle'],
    ['per-record InternalFailure', 'InternalFailure', 'retryable'],
    ['unknown name with HTTP 429', sdkError('Whatever', 429), 'throttle'],
    ['missing stream', sdkError('ResourceNotFoundException', 400), 'fatal'],
    ['no permission', sdkError('AccessDeniedException', 400), 'fatal'],
    ['bad request', sdkError('InvalidArgumentException', 400), 'fatal'],
    ['KMS key disabled', sdkError('KMSDisabledException', 400), 'fatal'],
    ['expired iterator (the reader handles it)', sdkError('ExpiredIteratorException', 400), 'fatal'],
    ['unknown 4xx', sdkError('SomethingNew', 403), 'fatal'],
    ['request timeout 408', sdkError('RequestTimeout', 408), 'retryable'],
    ['5xx', sdkError('InternalFailure', 500), 'retryable'],
    ['service unavailable', sdkError('ServiceUnavailable', 503), 'retryable'],
    ['network reset', Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }), 'retryable'],
    ['SDK timeout', sdkError('TimeoutError'), 'retryable'],
    ['undefined', undefined, 'retryable'],
  ];
  for (const [what, error, kind] of table) {
    it(`${what} → ${kind}`, () => {
      assert.equal(classifyError(error), kind);
      assert.equal(isRetryableStreamError(error), kind === 'throttle' || kind === 'retryable');
    });
  }

  it('errorName: the error name, else the value as text', () => {
    assert.equal(errorName(sdkError('ThrottlingException')), 'ThrottlingException');
    assert.equal(errorName('InternalFailure'), 'InternalFailure');
    assert.equal(errorName(undefined), 'undefined');
  });
});

describe('assertStreamActive', () => {
  for (const status of ['ACTIVE', 'UPDATING']) {
    it(`${status}: reads and writes work`, () => assertStreamActive('orders', status));
  }
  for (const [status, shown] of [
    ['CREATING', 'CREATING'],
    ['DELETING', 'DELETING'],
    [undefined, 'in an unknown state'],
  ] as const) {
    it(`${String(status)}: STREAM_FAILED naming the stream and its state`, () => {
      assert.throws(
        () => assertStreamActive('orders', status),
        (err: unknown) =>
          err instanceof MigratorError &&
          err.exitCode === ExitCode.STREAM_FAILED &&
          err.message === `Kinesis stream 'orders' is ${shown}, not ACTIVE.` &&
          err.hint === 'Wait until the stream is ACTIVE, then rerun.',
      );
    });
  }
});
