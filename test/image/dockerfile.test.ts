import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

// No Docker engine runs on the build machines, so these checks read the Dockerfile statically.
const dockerfile = readFileSync(new URL('../../Dockerfile', import.meta.url), 'utf8');
const dockerignore = readFileSync(new URL('../../.dockerignore', import.meta.url), 'utf8');
const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  bin: Record<string, string>;
  dependencies: Record<string, string>;
};
const stages = dockerfile.split(/^FROM /m).slice(1);
const finalStage = stages[stages.length - 1]!;

test('multi-stage build on a Node LTS image', () => {
  assert.ok(stages.length >= 2, 'more than one stage');
  const node = /ARG NODE_VERSION=(\d+)/.exec(dockerfile);
  assert.ok(node && Number(node[1]) % 2 === 0 && Number(node[1]) >= 22, 'an even (LTS) Node major >= 22');
});

test('the entrypoint is the package bin `migrator`, linked to the compiled main', () => {
  assert.match(finalStage, /^ENTRYPOINT \["migrator"\]$/m);
  assert.ok(pkg.bin.migrator, 'package.json has a migrator bin');
  assert.ok(finalStage.includes(`/app/${pkg.bin.migrator}`), `the image links /app/${pkg.bin.migrator}`);
});

test('MongoDB Database Tools come from official packages at a pinned version', () => {
  const v = /ARG MONGODB_TOOLS_VERSION=(\S+)/.exec(dockerfile);
  assert.ok(v, 'the version is an ARG with a default');
  assert.match(v[1]!, /^\d+\.\d+\.\d+$/, 'an exact version, not latest');
  assert.match(dockerfile, /https:\/\/fastdl\.mongodb\.org\/tools\/db\/mongodb-database-tools-/);
  assert.match(finalStage, /mongodump --version/);
});

test('the runtime runs as a non-root user and owns only its data directory', () => {
  const user = /^USER (\S+)$/gm;
  const users = [...finalStage.matchAll(user)].map((m) => m[1]);
  assert.ok(users.length > 0, 'USER is set in the final stage');
  assert.notEqual(users[users.length - 1], 'root');
  assert.notEqual(users[users.length - 1], '0');
  assert.match(finalStage, /MIGRATOR_DATA_DIR=\/data/);
});

test('the build copies only what it needs, and .dockerignore keeps the rest out', () => {
  const copies = [...dockerfile.matchAll(/^COPY (?!--from)(.+)$/gm)].map((m) => m[1]!.trim());
  const sources = copies.flatMap((c) => c.split(/\s+/).slice(0, -1));
  for (const s of sources) {
    assert.match(s, /^(package\.json|package-lock\.json|tsconfig(\.build)?\.json|src)$/, `unexpected COPY of ${s}`);
  }
  for (const ignored of ['node_modules', '.git', 'test', '.tools', '.env']) {
    assert.ok(dockerignore.split('\n').includes(ignored), `.dockerignore lists ${ignored}`);
  }
  assert.doesNotMatch(finalStage, /curl|wget/, 'no download tools in the final stage');
});

test('no credentials baked into the image', () => {
  assert.doesNotMatch(dockerfile, /AWS_SECRET_ACCESS_KEY|AWS_ACCESS_KEY_ID|mongodb:\/\/[^\s]*:[^\s]*@/);
});

test('runtime dependencies are the design packages', () => {
  for (const d of ['mongodb', '@aws-sdk/client-kinesis', 'execa', 'listr2', 'yargs']) {
    assert.ok(pkg.dependencies[d], `${d} is a runtime dependency`);
  }
});
