// Document diffs in MongoDB's "$v: 2" oplog delta format, as the server computes them for
// pipeline-style updates (doc_diff::computeOplogDiff), and their translation into a change
// event's `updateDescription`.
//
// Delta format: object diff {d: {f: false}, u: {f: v}, i: {f: v}, s<f>: subdiff}; array diff
// {a: true, l: newSize, u<idx>: v, s<idx>: subdiff}. A diff that is not smaller than the
// post-image is abandoned (the server then logs a replacement, which change streams report as
// `replace`).
import { calculateObjectSize } from 'bson';
import { isPlainObject, valuesIdentical, type Doc } from './bson-values.js';

export interface UpdateDescription extends Doc {
  updatedFields: Doc;
  removedFields: string[];
  truncatedArrays: { field: string; newSize: number }[];
}

/** Padding the server adds for oplog entry metadata when bailing out of a growing diff. */
const DELTA_METADATA_PADDING = 15;

function sizeOf(d: Doc): number {
  return calculateObjectSize(d, { ignoreUndefined: true });
}

function subDiff(pre: unknown, post: unknown): Doc | null {
  if (isPlainObject(pre) && isPlainObject(post)) return diffObject(pre, post, 0);
  if (Array.isArray(pre) && Array.isArray(post)) return diffArray(pre, post);
  return null;
}

function diffObject(pre: Doc, post: Doc, padding: number): Doc | null {
  const d: Doc = {};
  const u: Doc = {};
  const i: Doc = {};
  const s: Doc = {};
  const build = (): Doc => {
    const out: Doc = {};
    if (Object.keys(d).length) out.d = d;
    if (Object.keys(u).length) out.u = u;
    if (Object.keys(i).length) out.i = i;
    return Object.assign(out, s);
  };
  const limit = sizeOf(post) + padding;
  const preE = Object.entries(pre);
  const postE = Object.entries(post);
  const deletes = new Set<string>();
  let p = 0;
  let q = 0;
  while (p < preE.length && q < postE.length) {
    const [pk, pv] = preE[p];
    const [qk, qv] = postE[q];
    if (pk === qk) {
      if (!valuesIdentical(pv, qv)) {
        const sub = subDiff(pv, qv);
        if (sub) s['s' + pk] = sub;
        else u[pk] = qv;
      }
      p++;
      q++;
    } else {
      deletes.add(pk);
      p++;
    }
    if (limit < sizeOf(build())) return null;
  }
  for (; p < preE.length; p++) deletes.add(preE[p][0]);
  for (; q < postE.length; q++) {
    const [qk, qv] = postE[q];
    if (deletes.delete(qk)) u[qk] = qv;
    else i[qk] = qv;
  }
  for (const k of deletes) d[k] = false;
  return build();
}

function diffArray(pre: unknown[], post: unknown[]): Doc | null {
  const out: Doc = { a: true };
  const limit = sizeOf({ ...post });
  let n = 0;
  for (; n < Math.min(pre.length, post.length); n++) {
    if (limit < sizeOf(out)) return null;
    if (!valuesIdentical(pre[n], post[n])) {
      const sub = subDiff(pre[n], post[n]);
      if (sub) out['s' + n] = sub;
      else out['u' + n] = post[n];
    }
  }
  for (; n < post.length; n++) out['u' + n] = post[n];
  if (pre.length > post.length) {
    // `l` (new length) precedes element entries in the server's serialization.
    const { a, ...rest } = out;
    return limit > sizeOf({ a, l: post.length, ...rest }) ? { a, l: post.length, ...rest } : null;
  }
  return limit > sizeOf(out) ? out : null;
}

/** The oplog delta from `pre` to `post`; undefined for a no-op, null when a replacement is logged instead. */
export function computeOplogDiff(pre: Doc, post: Doc): Doc | null | undefined {
  const diff = diffObject(pre, post, DELTA_METADATA_PADDING);
  if (diff && Object.keys(diff).length === 0) return undefined;
  if (!diff || sizeOf(diff) >= sizeOf(post)) return null;
  return diff;
}

export function emptyDescription(): UpdateDescription {
  return { updatedFields: {}, removedFields: [], truncatedArrays: [] };
}

/** Translates a delta into updatedFields (dotted paths), removedFields and truncatedArrays. */
export function describeDiff(diff: Doc, prefix = '', out = emptyDescription()): UpdateDescription {
  const isArray = diff.a === true;
  for (const [k, v] of Object.entries(diff)) {
    if (isArray) {
      if (k === 'a') continue;
      if (k === 'l') out.truncatedArrays.push({ field: prefix.slice(0, -1), newSize: Number(v) });
      else if (k.startsWith('u')) out.updatedFields[prefix + k.slice(1)] = v;
      else if (k.startsWith('s')) describeDiff(v as Doc, `${prefix}${k.slice(1)}.`, out);
      continue;
    }
    if (k === 'd') out.removedFields.push(...Object.keys(v as Doc).map((f) => prefix + f));
    else if (k === 'u' || k === 'i') for (const [f, x] of Object.entries(v as Doc)) out.updatedFields[prefix + f] = x;
    else if (k.startsWith('s')) describeDiff(v as Doc, `${prefix}${k.slice(1)}.`, out);
  }
  return out;
}
