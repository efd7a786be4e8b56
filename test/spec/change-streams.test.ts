// MongoDB's unified-format change-streams specification tests against the emulator (or MONGODB_URI).
import { registerSuite, type ExpectedFailure } from './unified-runner.js';

const expectedFailures: ExpectedFailure[] = [];

await registerSuite({ dir: 'change-streams', expectedFailures });
