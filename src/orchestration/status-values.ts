// Defensive readers of the status module: documents are written by several programs (and
// versions); a missing or malformed field reads as absent instead of crashing the report.
import { BSON, type Document } from 'mongodb';
import type { ClusterTimeJson } from './status-types.js';

export const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

export function iso(v: unknown): string | null {
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? null : v.toISOString();
  if (typeof v === 'string' || typeof v === 'number') {
    const d = new Date(v);
    return Number.isNaN(d.getTime()) ? null : d.toISOString();
  }
  return null;
}

export const ms = (v: unknown): number | undefined => {
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? undefined : v.getTime();
  return undefined;
};

export function clusterTime(v: unknown): ClusterTimeJson | null {
  if (v && typeof v === 'object' && 't' in v && 'i' in v) {
    const t = num((v as { t: unknown }).t);
    const i = num((v as { i: unknown }).i);
    if (t !== undefined && i !== undefined) return { t, i };
  }
  return null;
}

export function ejson(v: unknown): unknown {
  if (v === undefined || v === null) return null;
  try {
    return JSON.parse(BSON.EJSON.stringify(v as Document, { relaxed: true })) as unknown;
  } catch {
    return null;
  }
}

export const round1 = (x: number) => Math.round(x * 10) / 10;

/** Percentage with one decimal; never 100 before `done`. */
export function percentOf(done: boolean, restored: number, total: number | undefined): number | null {
  if (done) return 100;
  if (total === undefined) return null;
  if (total <= 0) return 0;
  return Math.min(99.9, round1((restored / total) * 100));
}

