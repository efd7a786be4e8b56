#!/usr/bin/env node
// The project's test command (`npm test`): every test/**/*.test.ts and packages/*/test/**/*.test.ts
// (the workspace packages' own suites, e.g. the MongoDB emulator's conformance tests) through
// node's built-in runner with tsx. Tests that need the Go-built tools call ensureGoTools() themselves, so a fresh
// machine builds them on first use. Extra arguments select files: `npm test -- test/util`.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';

function collect(path, out) {
  const st = statSync(path);
  if (st.isDirectory()) {
    for (const name of readdirSync(path).sort()) {
      if (name === 'node_modules' || name.startsWith('.')) continue;
      collect(join(path, name), out);
    }
  } else if (path.endsWith('.test.ts')) {
    out.push(path);
  }
  return out;
}

const roots = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const flags = process.argv.slice(2).filter((a) => a.startsWith('-'));
/** Default roots: test/ and each workspace package's test/ folder. */
function defaultRoots() {
  const packages = existsSync('packages') ? readdirSync('packages').sort().map((name) => join('packages', name, 'test')) : [];
  return ['test', ...packages.filter((dir) => existsSync(dir))];
}
const files = (roots.length ? roots : defaultRoots()).flatMap((r) => collect(resolve(r), []));
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
const concurrency = process.env.TEST_CONCURRENCY ?? '2';
const res = spawnSync(
  process.execPath,
  // --test-force-exit: a test file whose tests have all ended exits even if a failed test left a
  // child process or timer behind (otherwise CI would wait for it until its own timeout).
  ['--import', 'tsx', '--test', '--test-force-exit', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...flags, ...files],
  { stdio: 'inherit', env: { ...process.env, NODE_ENV: 'test' } },
);
process.exit(res.status ?? 1);
