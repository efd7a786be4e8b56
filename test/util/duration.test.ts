import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDuration } from '../../src/util/duration.js';

test('durations: bare seconds and units', () => {
  assert.equal(parseDuration('180'), 180_000);
  assert.equal(parseDuration('90s'), 90_000);
  assert.equal(parseDuration('10m'), 600_000);
  assert.equal(parseDuration('250ms'), 250);
  assert.equal(parseDuration('2h'), 7_200_000);
  assert.equal(parseDuration('soon'), undefined);
  assert.equal(parseDuration('-5s'), undefined);
});
