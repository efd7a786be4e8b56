// MongoDB's unified-format retryable-writes specification tests against the emulator (or MONGODB_URI).
import { registerSuite, type ExpectedFailure } from './unified-runner.js';

const expectedFailures: ExpectedFailure[] = [];

await registerSuite({ dir: 'retryable-writes', expectedFailures });
