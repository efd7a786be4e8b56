import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ExitCode } from '../../src/util/exit-codes.js';

test('README exit-code table lists exactly the codes of src/util/exit-codes.ts', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const section = readme.split(/^## Exit codes$/m)[1]?.split(/^## /m)[0];
  assert.ok(section, 'README has an "## Exit codes" section');
  const rows = [...section.matchAll(/^\|\s*(\d+)\s*\|\s*`(\w+)`\s*\|/gm)].map((m) => [Number(m[1]), m[2]]);
  const expected = Object.entries(ExitCode).map(([name, code]) => [code, name]);
  assert.deepEqual(rows.sort(), expected.sort());
});

test('exit codes are distinct', () => {
  const codes = Object.values(ExitCode);
  assert.equal(new Set(codes).size, codes.length);
});
