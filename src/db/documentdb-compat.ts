/** One thing of a source collection a target refuses, with what to do about it. */
export interface Refusal {
  /** Short name of the item: "capped collection", "2d index loc_2d", "index x_1 with collation". */
  item: string;
  /** Why the target cannot hold it. */
  problem: string;
  /** What the user can do. */
  remedy: string;
}

const AWS_APIS = 'https://docs.aws.amazon.com/documentdb/latest/developerguide/mongo-apis.html';
const AWS_DIFFS = 'https://docs.aws.amazon.com/documentdb/latest/developerguide/functional-differences.html';
const AWS_PARTIAL = 'https://docs.aws.amazon.com/documentdb/latest/developerguide/partial-index.html';

/**
 * Operators Amazon DocumentDB 5.0 accepts in a partialFilterExpression: $eq, $exists, $and (only
 * at the top level), $gt/$gte/$lt/$lte ("Supported operators", AWS_PARTIAL above). A field: value
 * pair is an implicit $eq.
 */
function partialFilterOperatorsRefused(filter: unknown, top = true): string[] {
  const out: string[] = [];
  if (!filter || typeof filter !== 'object' || Array.isArray(filter)) return out;
  for (const [k, v] of Object.entries(filter as Record<string, unknown>)) {
    if (k === '$and') {
      if (!top) out.push('$and below the top level');
      if (Array.isArray(v)) for (const c of v) out.push(...partialFilterOperatorsRefused(c, false));
      continue;
    }
    if (k.startsWith('$')) {
      out.push(k);
      continue;
    }
    if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).some((op) => op.startsWith('$'))) {
      for (const op of Object.keys(v)) if (!['$eq', '$exists', '$gt', '$gte', '$lt', '$lte'].includes(op)) out.push(op);
    }
  }
  return [...new Set(out)];
}

/**
 * What Amazon DocumentDB (4.0 / 5.0 APIs) refuses to create, so that mongorestore or apply would
 * fail in the middle of a migration into it: capped collections, collation, time series and
 * clustered collections, and the index types / options AWS lists as unsupported
 * (https://docs.aws.amazon.com/documentdb/latest/developerguide/mongo-apis.html, "Indexes and index
 * properties" and "Administrative Commands";
 * https://docs.aws.amazon.com/documentdb/latest/developerguide/functional-differences.html).
 * (2dsphere and hashed indexes are supported, so not listed.) Collection options storageEngine and
 * changeStreamPreAndPostImages are refused too (not in the supported list).
 * Text indexes and partial indexes exist from the 5.0 API on; a partial index's filter may use only
 * the operators the partial-index page lists. Time-series collections are left to the caller
 * (target-compat.ts gives them their own choice, --time-series).
 */
export function documentDbRefusalItems(apiVersion: string, collectionOptions: Record<string, unknown>, indexes: Record<string, unknown>[]): Refusal[] {
  const out: Refusal[] = [];
  const v5 = Number.parseFloat(apiVersion) >= 5;
  const api = `Amazon DocumentDB ${apiVersion}`;
  const uncapped = 'Copy it to an uncapped collection on the source and migrate that (or leave it out with --exclude), then rerun.';
  if (collectionOptions.capped) out.push({ item: 'capped collection', problem: `${api} has no capped collections (${AWS_DIFFS})`, remedy: uncapped });
  if (collectionOptions.collation !== undefined) {
    out.push({
      item: 'collection collation',
      problem: `${api} does not support collation (${AWS_APIS}): the collection's default collation cannot be created`,
      remedy: 'Leave it out with --exclude, or copy it on the source into a collection without a collation (queries then compare strings binary), then rerun.',
    });
  }
  if (collectionOptions.clusteredIndex !== undefined) {
    out.push({ item: 'clustered collection', problem: `${api} has no clustered collections (${AWS_APIS})`, remedy: 'Leave it out with --exclude, or copy it on the source into an ordinary collection, then rerun.' });
  }
  for (const k of ['storageEngine', 'changeStreamPreAndPostImages'] as const) {
    if (collectionOptions[k] !== undefined && collectionOptions[k] !== false) {
      out.push({
        item: `collection option ${k}`,
        problem: `${api} does not support the collection option ${k} (${AWS_APIS})`,
        remedy:
          k === 'changeStreamPreAndPostImages'
            ? 'Turn it off on the source (collMod with changeStreamPreAndPostImages: {enabled: false}), or leave the collection out with --exclude, then rerun.'
            : 'Copy the collection on the source into one created without storageEngine options, or leave it out with --exclude, then rerun.',
      });
    }
  }
  const dropIndex = (name: string) => `Drop index ${name} on the source (db.coll.dropIndex("${name}")) or leave the collection out with --exclude, then rerun.`;
  for (const ix of indexes) {
    const name = String(ix.name ?? '?');
    const keys = Object.entries((ix.key ?? {}) as Record<string, unknown>);
    if (keys.some(([f]) => f === '$**' || f.endsWith('.$**'))) {
      out.push({ item: `wildcard index ${name}`, problem: `${api} has no wildcard indexes (${AWS_APIS})`, remedy: dropIndex(name) });
    }
    for (const t of ['2d', 'geoHaystack'] as const) {
      if (keys.some(([, type]) => type === t)) {
        out.push({ item: `${t} index ${name}`, problem: `${api} supports only 2dsphere geospatial indexes, not ${t} (${AWS_APIS})`, remedy: `${dropIndex(name)} A 2dsphere index on GeoJSON points is the supported replacement.` });
      }
    }
    // 2dsphere: "Supported index properties: name" only
    // (https://docs.aws.amazon.com/documentdb/latest/developerguide/indexes-geospatial.html). The
    // 2dsphereIndexVersion MongoDB adds to every 2dsphere index is not listed either way
    // (undocumented), so it is not reported; sparse, unique, partial filters and the like are.
    if (keys.some(([, type]) => type === '2dsphere')) {
      const extra = Object.keys(ix).filter((k) => !['v', 'key', 'name', 'ns', 'background', '2dsphereIndexVersion'].includes(k) && ix[k] !== false);
      if (extra.length) {
        out.push({
          item: `2dsphere index ${name} with ${extra.join(', ')}`,
          problem: `${api} supports 2dsphere indexes with no property but their name (https://docs.aws.amazon.com/documentdb/latest/developerguide/indexes-geospatial.html)`,
          remedy: `Recreate index ${name} on the source without ${extra.join(', ')}, or drop it, then rerun.`,
        });
      }
    }
    if (!v5 && keys.some(([, type]) => type === 'text')) {
      out.push({ item: `text index ${name}`, problem: `${api} has no text indexes (they come with the 5.0 API: ${AWS_APIS})`, remedy: `${dropIndex(name)} Or migrate into a DocumentDB 5.0 cluster.` });
    }
    for (const k of ['collation', 'storageEngine', 'hidden'] as const) {
      if (ix[k] !== undefined && ix[k] !== false) {
        out.push({ item: `index ${name} with ${k}`, problem: `${api} does not support the index option ${k} (${AWS_APIS})`, remedy: `Recreate index ${name} on the source without ${k}${k === 'hidden' ? ' (unhide it: collMod with index.hidden false)' : ''}, or drop it, then rerun.` });
      }
    }
    if (ix.partialFilterExpression !== undefined) {
      if (!v5) {
        out.push({ item: `partial index ${name}`, problem: `${api} has no partial indexes (they come with the 5.0 API: ${AWS_PARTIAL})`, remedy: `${dropIndex(name)} Or migrate into a DocumentDB 5.0 cluster.` });
      } else {
        const refused = partialFilterOperatorsRefused(ix.partialFilterExpression);
        if (refused.length) {
          out.push({
            item: `partial index ${name} filter`,
            problem: `${api} accepts only $eq, $exists, $gt, $gte, $lt, $lte and a top-level $and in a partialFilterExpression (${AWS_PARTIAL}); this one uses ${refused.join(', ')}`,
            remedy: `Recreate index ${name} on the source with a filter made of the supported operators, or drop it, then rerun.`,
          });
        }
      }
    }
  }
  return out;
}

/** The items documentDbRefusalItems finds, as short names (compare-schema.ts explains schema differences with them). */
export function documentDbRefusals(
  apiVersion: string,
  collectionOptions: Record<string, unknown>,
  indexes: Record<string, unknown>[],
): string[] {
  const legacy: Record<string, string> = {
    'capped collection': 'a capped collection',
    'collection collation': 'collection option collation',
    'clustered collection': 'collection option clusteredIndex',
  };
  const out = documentDbRefusalItems(apiVersion, collectionOptions, indexes).map((r) => legacy[r.item] ?? r.item);
  if (collectionOptions.timeseries !== undefined) out.push('collection option timeseries');
  return [...new Set(out)];
}
