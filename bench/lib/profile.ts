/**
 * Summary of a V8 .cpuprofile (node --cpu-prof): self time per function and per category
 * (product source by folder, bson, AWS SDK, mongodb driver, zlib/brotli, GC, node internals…).
 */
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
  hitCount?: number;
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  totalMs: number;
  categories: Array<{ category: string; ms: number; pct: number }>;
  functions: Array<{ fn: string; where: string; category: string; ms: number; pct: number }>;
  /** disjoint stages (outermost matching frame), GC, and other time by category */
  stages: Array<{ stage: string; ms: number; pct: number }>;
}

export function categoryOf(url: string, fn: string): string {
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(idle)' || fn === '(program)') return fn;
  if (!url) return fn.includes('Brotli') || fn.includes('zlib') ? 'zlib/brotli (native)' : 'native/builtin';
  const u = decodeURIComponent(url);
  const m = /\/src\/([a-z-]+)\//.exec(u);
  if (m && !u.includes('node_modules')) return `product src/${m[1]}`;
  if (u.includes('/bench/')) return 'bench harness';
  if (u.includes('/test/support/')) return 'test support';
  if (/node_modules\/bson\//.test(u)) return 'bson';
  if (u.includes('node_modules/mongodb/')) return 'mongodb driver';
  if (/node_modules\/(@aws-sdk|@smithy|@aws-crypto)\//.test(u)) return 'AWS SDK';
  if (u.includes('node_modules/pino') || u.includes('thread-stream') || u.includes('sonic-boom')) return 'logging';
  if (u.startsWith('node:zlib') || u.includes('node:internal/zlib') || u === 'node:zlib') return 'zlib/brotli';
  if (u.startsWith('node:')) return `node ${u.replace(/^node:(internal\/)?/, '').split('/')[0]}`;
  if (u.includes('node_modules/')) return `npm ${u.split('node_modules/').pop()!.split('/')[0]}`;
  return 'other';
}

/**
 * Pipeline stages: a sample belongs to the OUTERMOST matching frame of its stack (so stages are
 * disjoint and sum up with 'GC' and 'other' to 100%). Matched by function name and file.
 */
const STAGES: Array<{ stage: string; fn: RegExp; file: RegExp }> = [
  { stage: 'in-memory Kinesis server (bench, subtracted from CPU figures)', fn: /^answer$/, file: /bench\/lib\/memory-kinesis/ },
  { stage: 'source: BSON.deserialize of change events (driver work)', fn: /^deserialize$/, file: /node_modules\/bson\// },
  { stage: 'capture: change event → envelope', fn: /^envelopeFromChangeEvent$/, file: /src\/source\/change-envelope/ },
  { stage: 'capture: envelope → BSON (encodeEnvelope)', fn: /^encodeEnvelope$/, file: /src\/source\/change-envelope/ },
  { stage: 'capture: routing key (MD5 of ns + _id)', fn: /^(routingKey|hashKeyOf)$/, file: /src\/(source\/change-envelope|transport\/shard-map)/ },
  { stage: 'producer: packing + brotli compression (packRecord)', fn: /^packRecord$/, file: /src\/transport\/record-framing/ },
  { stage: 'SDK: request/response marshalling, base64, SigV4', fn: /^send$/, file: /@smithy|@aws-sdk/ },
  { stage: 'consumer: frame decode + decompression (assembler)', fn: /^push$/, file: /src\/transport\/shard-record-assembler/ },
  { stage: 'apply: envelope decode (BSON.deserialize)', fn: /^decodeEnvelope$/, file: /src\/source\/change-envelope/ },
  { stage: 'apply: dedupe + batch planning', fn: /^(planBatch|dedupeEnvelopes)$/, file: /src\/apply\/plan/ },
  { stage: 'apply: bulk writes (stub target: BSON.serialize of the ops)', fn: /^applyCollection$/, file: /src\/apply\/writer/ },
];

export function summarizeProfile(path: string, top = 25): ProfileSummary {
  const p = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfMs = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!;
    const dt = (p.timeDeltas[i + 1] ?? 0) / 1000;
    selfMs.set(id, (selfMs.get(id) ?? 0) + dt);
  }
  let total = 0;
  const cats = new Map<string, number>();
  const fns = new Map<string, { fn: string; where: string; category: string; ms: number }>();
  const stageMs = new Map<string, number>();
  for (const [id, ms] of selfMs) {
    const n = byId.get(id)!;
    const { functionName, url, lineNumber } = n.callFrame;
    if (functionName === '(idle)') continue;
    total += ms;
    const cat = categoryOf(url, functionName);
    cats.set(cat, (cats.get(cat) ?? 0) + ms);
    const where = url ? `${shortUrl(url)}:${lineNumber + 1}` : '';
    const key = `${functionName}@${where}`;
    const f = fns.get(key) ?? { fn: functionName || '(anonymous)', where, category: cat, ms: 0 };
    f.ms += ms;
    fns.set(key, f);
    // stage: the outermost matching frame of the stack; else GC / the leaf's category
    let stage: string | undefined;
    /** category of the nearest frame that is product, harness or npm code (natives and node internals are charged to their caller) */
    let owner: string | undefined;
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const cf = byId.get(cur)!.callFrame;
      const url = decodeURIComponent(cf.url);
      for (const st of STAGES) if (st.fn.test(cf.functionName) && st.file.test(url)) stage = st.stage;
      if (owner === undefined && url && !url.startsWith('node:')) owner = categoryOf(url, cf.functionName);
    }
    stage ??= cat === 'GC' || cat === '(program)' ? cat : `other: ${owner ?? cat}`;
    stageMs.set(stage, (stageMs.get(stage) ?? 0) + ms);
  }
  const pct = (ms: number) => Math.round((ms / total) * 1000) / 10;
  return {
    totalMs: Math.round(total),
    categories: [...cats].map(([category, ms]) => ({ category, ms: Math.round(ms), pct: pct(ms) })).sort((a, b) => b.ms - a.ms),
    functions: [...fns.values()]
      .sort((a, b) => b.ms - a.ms)
      .slice(0, top)
      .map((f) => ({ ...f, ms: Math.round(f.ms), pct: pct(f.ms) })),
    stages: [...stageMs].map(([stage, ms]) => ({ stage, ms: Math.round(ms), pct: pct(ms) })).sort((a, b) => b.ms - a.ms),
  };
}

function shortUrl(url: string): string {
  const u = decodeURIComponent(url).replace(/^file:\/\//, '');
  const i = u.lastIndexOf('node_modules/');
  if (i >= 0) return u.slice(i + 'node_modules/'.length);
  const j = u.indexOf('/src/');
  if (j >= 0) return u.slice(j + 1);
  const k = u.indexOf('/bench/');
  if (k >= 0) return u.slice(k + 1);
  return u;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(summarizeProfile(process.argv[2]!, Number(process.argv[3] ?? 25)), null, 1));
}
