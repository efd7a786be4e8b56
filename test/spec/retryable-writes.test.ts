// MongoDB's unified-format retryable-writes specification tests against the emulator (or MONGODB_URI).
import { registerSuite, type ExpectedFailure } from './unified-runner.js';

// Tests the emulator fails on the mongodb-7.0 profile, each with the gap that makes it fail.
const expectedFailures: ExpectedFailure[] = [
  { file: 'aggregate-out-merge', test: 'aggregate with $merge does not set txnNumber', reason: '$merge is not supported by the emulator' },
];

await registerSuite({ dir: 'retryable-writes', expectedFailures, minPassing: 100 });
