/**
 * Index-build progress of the initial load in `status` (indexes after data: index-build.ts), from
 * what the builders record per collection (LoadCollectionProgress.indexes) and, while the load
 * runs, the 'indexes' units' leases.
 *
 * JSON (`status --json`, fields only ever added):
 *   load.namespaces[].indexes  null (no index built after this collection's data: it has none
 *                              besides _id_, --no-index-restore, or a load planned before indexes
 *                              came after data) | { total, built, pending, building: name|null }
 *   load.indexes               { total, built, pending, building: [{ ns, name }] } over the
 *                              collections above ({ 0, 0, 0, [] } when there are none)
 */
import type { LoadCollectionProgress, LoadUnitDoc } from '../state/store.js';

export interface NamespaceIndexStatus {
  total: number;
  built: number;
  pending: number;
  /** The index being built now, if its unit is running under a live lease. */
  building: string | null;
}

export interface LoadIndexStatus {
  total: number;
  built: number;
  pending: number;
  building: { ns: string; name: string }[];
}

const names = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

/**
 * A collection's index progress. `units`: the load's units while it runs (empty once it finished,
 * or when not read). A builder that died leaves its "building" behind: it is shown only while the
 * collection's 'indexes' unit runs under an unexpired lease (or, with no units at hand, while the
 * load is not finished).
 */
export function namespaceIndexStatus(
  ns: string,
  p: Pick<LoadCollectionProgress, 'indexes'> | undefined,
  units: readonly LoadUnitDoc[],
  loadFinished: boolean,
  nowMs: number,
): NamespaceIndexStatus | null {
  const ix = p?.indexes;
  if (!ix || typeof ix !== 'object') return null;
  const built = names(ix.built).length;
  const pending = names(ix.pending).length;
  let building = typeof ix.building === 'string' ? ix.building : null;
  if (building !== null) {
    const live =
      units.length === 0
        ? !loadFinished
        : units.some(
            (u) =>
              u.kind === 'indexes' && `${u.sourceDb}.${u.coll}` === ns && u.state === 'running' && Boolean(u.lease?.owner) && new Date(u.lease.expiresAt).getTime() > nowMs,
          );
    if (!live) building = null;
  }
  return { total: built + pending, built, pending, building };
}

/** The load's index progress over its collections. */
export function loadIndexStatus(namespaces: readonly { ns: string; indexes: NamespaceIndexStatus | null }[]): LoadIndexStatus {
  const s: LoadIndexStatus = { total: 0, built: 0, pending: 0, building: [] };
  for (const n of namespaces) {
    if (!n.indexes) continue;
    s.total += n.indexes.total;
    s.built += n.indexes.built;
    s.pending += n.indexes.pending;
    if (n.indexes.building) s.building.push({ ns: n.ns, name: n.indexes.building });
  }
  return s;
}

/** ", indexes 1/3 (building n_unique)" after a collection's line; '' when it builds none. */
export function formatNamespaceIndexes(s: NamespaceIndexStatus | null): string {
  if (!s || s.total === 0) return '';
  return `, indexes ${s.built}/${s.total}${s.building ? ` (building ${s.building})` : ''}`;
}

/** "  indexes: 4/10 built; building shop.items n_unique" for the load's summary; null when none are built after data. */
export function formatLoadIndexes(s: LoadIndexStatus): string | null {
  if (s.total === 0) return null;
  const building = s.building.length ? `; building ${s.building.map((b) => `${b.ns} ${b.name}`).join(', ')}` : '';
  return `  indexes (after data): ${s.built}/${s.total} built${building}`;
}
