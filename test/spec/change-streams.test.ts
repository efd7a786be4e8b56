// MongoDB's unified-format change-streams specification tests against the emulator (or MONGODB_URI).
import { registerSuite, type ExpectedFailure } from './unified-runner.js';

// None: every applicable test passes on the mongodb-7.0 profile.
const expectedFailures: ExpectedFailure[] = [];

// minPassing: issue #11's target on mongodb-7.0 (62 of the 66 applicable tests).
await registerSuite({ dir: 'change-streams', expectedFailures, minPassing: 62 });
