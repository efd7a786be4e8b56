import type { MongoClient } from 'mongodb';

/**
 * What Amazon DocumentDB (4.0 / 5.0 APIs) refuses to create, so that mongorestore or apply would
 * fail in the middle of a migration into it: capped collections, collation, time series and
 * clustered collections, and the index types / options AWS lists as unsupported
 * (https://docs.aws.amazon.com/documentdb/latest/developerguide/mongo-apis.html, "Indexes and index
 * properties" and "Administrative Commands";
 * https://docs.aws.amazon.com/documentdb/latest/developerguide/functional-differences.html).
 * Text indexes and partial indexes exist from the 5.0 API on.
 */
export function documentDbRefusals(
  apiVersion: string,
  collectionOptions: Record<string, unknown>,
  indexes: Record<string, unknown>[],
): string[] {
  const out: string[] = [];
  const v5 = Number.parseFloat(apiVersion) >= 5;
  if (collectionOptions.capped) out.push('a capped collection');
  for (const k of ['collation', 'timeseries', 'clusteredIndex'] as const) if (collectionOptions[k] !== undefined) out.push(`collection option ${k}`);
  for (const ix of indexes) {
    const name = String(ix.name ?? '?');
    for (const [field, type] of Object.entries((ix.key ?? {}) as Record<string, unknown>)) {
      if (field === '$**' || field.endsWith('.$**')) out.push(`wildcard index ${name}`);
      if (type === '2d' || type === 'geoHaystack') out.push(`${type} index ${name}`);
      if (type === 'text' && !v5) out.push(`text index ${name}`);
    }
    for (const k of ['collation', 'storageEngine', 'hidden'] as const) if (ix[k] !== undefined && ix[k] !== false) out.push(`index ${name} with ${k}`);
    if (ix.partialFilterExpression !== undefined && !v5) out.push(`partial index ${name}`);
  }
  return [...new Set(out)];
}

/** Per source namespace, what a DocumentDB target of `apiVersion` would refuse (only namespaces with something). */
export async function documentDbIncompatibilities(
  source: MongoClient,
  namespaces: { db: string; coll: string }[],
  apiVersion: string,
): Promise<{ ns: string; what: string[] }[]> {
  const out: { ns: string; what: string[] }[] = [];
  const byDb = new Map<string, Set<string>>();
  for (const n of namespaces) byDb.set(n.db, (byDb.get(n.db) ?? new Set()).add(n.coll));
  for (const [db, colls] of byDb) {
    const infos = await source.db(db).listCollections({}, { nameOnly: false }).toArray();
    for (const info of infos) {
      if (!colls.has(info.name)) continue;
      const indexes = await source.db(db).collection(info.name).listIndexes().toArray();
      const what = documentDbRefusals(apiVersion, ((info as { options?: Record<string, unknown> }).options ?? {}), indexes);
      if (what.length) out.push({ ns: `${db}.${info.name}`, what });
    }
  }
  return out;
}
