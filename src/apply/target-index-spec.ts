/**
 * The one place every index property written to the target by schema replay (apply's
 * createIndexes / collMod of an index, writer.ts) and by the cutover reconcile
 * (orchestration/schema-reconcile.ts) passes through, so that target-side policies on index
 * specs apply to all of them alike.
 */
import type { Document } from 'mongodb';
import type { CollectionNamespace } from '../source/change-envelope.js';

/**
 * How the spec is used:
 *  - `createIndexes`: a full index spec (`key`, `name`, options such as `expireAfterSeconds`);
 *  - `collMod`: the `index` argument of collMod (`name` or `keyPattern`, and the changed
 *    properties such as `expireAfterSeconds` or `hidden`,
 *    https://www.mongodb.com/docs/manual/reference/command/collMod/#change-index-properties).
 */
export type TargetIndexUse = 'createIndexes' | 'collMod';

/** The index spec as written to `target`. Identity for now. */
export function targetIndexSpec(target: CollectionNamespace, spec: Document, use: TargetIndexUse): Document {
  void target;
  void use;
  // TTL hold is wired here (issue #12 item 3)
  return spec;
}
