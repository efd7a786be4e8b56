// MongoDB's unified-format retryable-writes specification tests against the emulator (or MONGODB_URI).
import { registerSuite, type ExpectedFailure } from './unified-runner.js';

// None: every applicable test passes on the mongodb-7.0 profile.
const expectedFailures: ExpectedFailure[] = [];

await registerSuite({ dir: 'retryable-writes', expectedFailures, minPassing: 100 });
