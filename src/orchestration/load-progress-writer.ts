import type { LoadCollectionProgress } from '../state/store.js';
import { noteLoadProgress } from '../observability/stats.js';

/** The one store call the writer needs (StateStore.updateLoadProgress). */
export type SaveLoadProgress = (ns: string, fields: Partial<LoadCollectionProgress>) => Promise<void>;

export interface LoadProgressWriter {
  /** Records progress of one collection; dropped when the last write of it is under `minIntervalMs` old, unless `force`. */
  write(ns: string, fields: Partial<LoadCollectionProgress>, force?: boolean): void;
  /** Resolves once every write handed over so far has been attempted. */
  flush(): Promise<void>;
}

/**
 * Initial-load progress writes to the state store, off the tools' output path (the tools are never
 * slowed by the store) and throttled to one per collection per `minIntervalMs` (final counts are
 * forced through).
 *
 * INVARIANTS, per collection: at most one write is in flight and a later write never lands before
 * an earlier one ("dumped 5000" is never overwritten by a slow "dumped 1200"); what arrives while
 * one is in flight is merged (newest fields win) into a single queued write. So memory is bounded
 * by the number of collections, whatever the length of the load or the store's latency. A failed
 * progress write is dropped: progress is for `status`, and a reload redoes the load anyway.
 */
export function createLoadProgressWriter(save: SaveLoadProgress, minIntervalMs = 1000): LoadProgressWriter {
  const lastWrite = new Map<string, number>();
  const running = new Map<string, Promise<void>>();
  const queued = new Map<string, Partial<LoadCollectionProgress>>();
  const start = (ns: string, fields: Partial<LoadCollectionProgress>) => {
    const w = save(ns, fields)
      .catch(() => undefined)
      .then(() => {
        running.delete(ns);
        const next = queued.get(ns);
        queued.delete(ns);
        if (next) start(ns, next);
      });
    running.set(ns, w);
  };
  return {
    write(ns, fields, force = false) {
      noteLoadProgress(ns, fields); // metrics: every progress line, not throttled (no I/O)
      const now = Date.now();
      if (!force && now - (lastWrite.get(ns) ?? -Infinity) < minIntervalMs) return;
      lastWrite.set(ns, now);
      if (running.has(ns)) queued.set(ns, { ...queued.get(ns), ...fields });
      else start(ns, fields);
    },
    async flush() {
      while (running.size) await Promise.all(running.values());
    },
  };
}
