/**
 * `npm run bench -- --smoke` (issue #16): the benchmark runs every section at tiny sizes, as part
 * of `npm test`, so that it cannot rot unnoticed again. Asserts that each section produced its
 * figures, never any speed (the machine may be loaded), and that a smoke run leaves
 * bench/results/ alone.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { PROJECT_ROOT } from '../support/cli.js';

type Obj = Record<string, unknown>;
const o = (x: unknown, what: string): Obj => {
  assert.ok(x !== null && typeof x === 'object', `${what} is missing`);
  return x as Obj;
};
const isNumber = (x: unknown, what: string) => assert.ok(typeof x === 'number' && Number.isFinite(x), `${what}: expected a number, got ${String(x)}`);
const positive = (x: unknown, what: string) => assert.ok(typeof x === 'number' && x > 0, `${what}: expected a positive number, got ${String(x)}`);

const resultsDir = path.join(PROJECT_ROOT, 'bench/results');
const snapshot = () =>
  readdirSync(resultsDir)
    .sort()
    .map((f) => `${f}:${existsSync(path.join(resultsDir, f)) && f.includes('.') ? createHash('sha1').update(readFileSync(path.join(resultsDir, f))).digest('hex') : 'dir'}`)
    .join('\n');

test('npm run bench -- --smoke runs every section and writes only smoke.{json,md} to --out', { timeout: 10 * 60_000 }, async () => {
  const out = mkdtempSync(path.join(os.tmpdir(), 'bench-smoke-test-'));
  const before = snapshot();
  try {
    const r = await execa(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--smoke', '--out', out], {
      cwd: PROJECT_ROOT,
      reject: false,
      stdin: 'ignore',
      timeout: 9 * 60_000,
      env: { ...process.env, NODE_NO_WARNINGS: '1' },
    });
    assert.equal(r.exitCode, 0, `bench --smoke failed:\n${String(r.stderr).slice(-4000)}`);
    assert.match(String(r.stdout), /^## Benchmarks/m, 'prints the markdown report');
    assert.deepEqual(readdirSync(out).sort(), ['profiles', 'smoke.json', 'smoke.md']);
    assert.equal(snapshot(), before, 'bench/results/ is unchanged (no latest.*, no stamped results)');

    const res = JSON.parse(readFileSync(path.join(out, 'smoke.json'), 'utf8')) as Obj;
    assert.equal(o(res.flags, 'flags').smoke, true);

    // stack: ours, capture / apply / end to end, both document sizes
    for (const size of ['small', 'medium']) {
      const s = o(o(res.stack, 'stack')[size], `stack.${size}`);
      for (const run of ['capture', 'apply', 'e2e']) {
        const x = o(s[run], `stack.${size}.${run}`);
        // every event of the backlog (its collection is created before the start point, so its
        // `create` event, captured since schema events are, is not among them)
        assert.equal(x.events, s.count, `stack.${size}.${run}: every event of the backlog`);
        isNumber(x.cpuSeconds, `stack.${size}.${run}.cpuSeconds`);
      }
    }
    // the seed's loop
    const seed = o(o(res.seed, 'seed').small, 'seed.small');
    for (const run of ['capture', 'apply', 'e2e', 'asWritten']) positive(o(seed[run], `seed.small.${run}`).events, `seed.small.${run}.events`);
    // lag, ours and the seed's
    for (const who of ['ours', 'seed']) {
      const lag = o(o(o(res.lag, 'lag')[who], `lag.${who}`).lag, `lag.${who}.lag`);
      positive(lag.samples, `lag.${who}.samples`);
      assert.equal(typeof lag.p99Ms, 'number', `lag.${who}.p99Ms`);
    }
    // initial load: both variants restored every document
    const load = res.load as Obj[];
    assert.deepEqual(load.map((l) => l.mode).sort(), ['product', 'shell']);
    for (const l of load) assert.equal(l.restored, res.loadDocuments, `${String(l.label)} restored every document`);
    // partitioned load of one collection (issue #13): single pipe, 1/2/4 ranges at once, raw shell
    // pipe, each ending equal; and the resume after a SIGKILL at ~60 % of the ranges
    const pt = o(res.partitions, 'partitions');
    positive(pt.documents, 'partitions.documents');
    for (const run of ['raw', 'single', 'p1', 'p2', 'p4']) {
      const x = o(pt[run], `partitions.${run}`);
      assert.equal(x.targetCount, pt.documents, `partitions.${run}: the target ends with the source's count`);
      positive(x.seconds, `partitions.${run}.seconds`);
      isNumber(x.toolsCpuSeconds, `partitions.${run}.toolsCpuSeconds`);
      isNumber(o(x.otherCpuSeconds, `partitions.${run}.otherCpuSeconds`).target, `partitions.${run}.otherCpuSeconds.target`);
    }
    assert.equal(o(pt.single, 'partitions.single').units, 1, 'the single pipe is one unit');
    for (const run of ['p1', 'p2', 'p4']) assert.ok((o(pt[run], `partitions.${run}`).ranges as number) >= 2, `partitions.${run}: the collection was split`);
    const resume = o(pt.resume, 'partitions.resume');
    const killed = o(resume.killed, 'partitions.resume.killed');
    assert.ok((killed.rangesDone as number) >= 1 && (killed.rangesDone as number) < (killed.ranges as number), 'killed mid-load');
    const rerun = o(resume.rerun, 'partitions.resume.rerun');
    assert.equal(rerun.targetCount, pt.documents, 'the rerun ends with the source count');
    assert.equal(rerun.unitsKept, killed.rangesDone, 'the rerun kept every range finished before the kill');
    const work = o(resume.work, 'partitions.resume.work');
    assert.equal(work.toolReported, pt.documents, 'tool-reported documents add up to the collection once');
    assert.ok((work.resume as number) < (work.fullReload as number), 'the resume writes fewer documents than a full reload');
    positive(o(resume.wall, 'partitions.resume.wall').resume, 'partitions.resume.wall.resume');
    assert.match(String(r.stdout), /resume after a kill/, 'the report shows the partitioned load');
    // in-process, three document sizes: capture and apply of every event
    for (const size of ['small', 'kib', 'medium']) {
      const x = o(o(res.inproc, 'inproc')[size], `inproc.${size}`);
      assert.equal(o(x.capture, 'capture').events, x.count, `inproc.${size} capture`);
      assert.equal(o(x.apply, 'apply').events, x.count, `inproc.${size} apply`);
      // CPU seconds net of the in-memory log's own time: at smoke sizes, noise can make it ≤ 0
      isNumber(o(x.apply, 'apply').cpuSeconds, `inproc.${size}.apply.cpuSeconds`);
    }
    // backlog: peak RSS of capture and of apply (default and bounded)
    const backlog = o(res.backlog, 'backlog');
    for (const run of ['capture', 'apply', 'applyBounded']) {
      const x = o(backlog[run], `backlog.${run}`);
      assert.equal(x.failed, undefined, `backlog.${run} failed: ${String(x.failed)}`);
      assert.equal(x.events, backlog.count, `backlog.${run} events`);
      positive(x.peakRssBytes, `backlog.${run}.peakRssBytes`);
    }
    // rate: Kinesis records/s per shard at 500 / 5,000 / 50,000 events/s
    const rate = o(res.recordRate, 'recordRate');
    assert.deepEqual(Object.keys(rate).sort(), ['500', '5000', '50000']);
    for (const [k, v] of Object.entries(rate)) {
      const x = o(v, `recordRate.${k}`);
      positive(x.events, `recordRate.${k}.events`);
      positive(x.recordsPerShardSecond, `recordRate.${k}.recordsPerShardSecond`);
      positive(x.maxRecordsPerShardSecond, `recordRate.${k}.maxRecordsPerShardSecond`);
    }
    // profile: a CPU profile, summarised
    const profile = o(res.profile, 'profile');
    positive(o(profile.summary, 'profile.summary').totalMs, 'profile.summary.totalMs');
    // the capacity model is computed from what was measured
    assert.ok(Array.isArray(o(res.capacity, 'capacity').rows));
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
