/**
 * How a Kinesis call names its stream. `--kinesis-stream` takes a name (a stream of the caller's
 * account and region) or an ARN, which reaches a stream of another account (the usual setup when
 * the stream lives in a central account, with a resource policy granting access). Every request
 * that names the stream goes through {@link streamParams}.
 */
const STREAM_ARN = /^arn:(aws[a-z-]*):kinesis:([a-z0-9-]+):(\d{12}):stream\/([A-Za-z0-9_.-]{1,128})$/;

export interface StreamArn {
  partition: string;
  region: string;
  account: string;
  name: string;
}

export function parseStreamArn(stream: string): StreamArn | undefined {
  const m = STREAM_ARN.exec(stream);
  return m ? { partition: m[1]!, region: m[2]!, account: m[3]!, name: m[4]! } : undefined;
}

export function isStreamArn(stream: string): boolean {
  return stream.startsWith('arn:');
}

/** `{StreamARN}` for an ARN, else `{StreamName}`. */
export function streamParams(stream: string): { StreamName: string } | { StreamARN: string } {
  return isStreamArn(stream) ? { StreamARN: stream } : { StreamName: stream };
}
