// MongoDB's unified-format retryable-writes specification tests against the emulator (or MONGODB_URI).
import { registerSuite, type ExpectedFailure } from './unified-runner.js';

// None: every applicable test passes on the mongodb-7.0 profile.
const expectedFailures: ExpectedFailure[] = [];

// minPassing: issue #11's target on mongodb-7.0 (100 of the 112 applicable tests).
await registerSuite({ dir: 'retryable-writes', expectedFailures, minPassing: 100 });
