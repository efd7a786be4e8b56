/** The envelope's format version and operations, and the check of schema events' descriptions. */
import type { Document } from 'mongodb';
import { EnvelopeFormatError, isPlainDocument } from './envelope-values.js';

/** Envelope format version. Bump when the layout changes incompatibly; decoders reject others. */
export const ENVELOPE_VERSION = 1 as const;

export type DataOp = 'insert' | 'update' | 'replace' | 'delete';
export type DdlOp = 'drop' | 'rename' | 'dropDatabase' | SchemaOp;
/**
 * Schema events of a change stream opened with `showExpandedEvents: true` (MongoDB 6.0+,
 * https://www.mongodb.com/docs/manual/reference/change-events/): a collection or view created
 * (create), indexes built (createIndexes) or dropped (dropIndexes), a collMod (modify). Each
 * carries the event's `operationDescription` in {@link ChangeEnvelope.desc}.
 */
export type SchemaOp = 'create' | 'createIndexes' | 'dropIndexes' | 'modify';
export type EnvelopeOp = DataOp | DdlOp | 'barrier' | 'origin';

export const DATA_OPS: readonly DataOp[] = ['insert', 'update', 'replace', 'delete'];
export const SCHEMA_OPS: readonly SchemaOp[] = ['create', 'createIndexes', 'dropIndexes', 'modify'];
export const DDL_OPS: readonly DdlOp[] = ['drop', 'rename', 'dropDatabase', ...SCHEMA_OPS];

export function isSchemaOp(op: string): op is SchemaOp {
  return (SCHEMA_OPS as readonly string[]).includes(op);
}

/**
 * The part of an expanded event's operationDescription that apply needs, checked: createIndexes
 * and dropIndexes need `indexes`, a non-empty array of index specs with a string `name` (and a
 * `key` document for createIndexes). Throws EnvelopeFormatError; returns the description as is.
 */
export function schemaDescription(op: SchemaOp, desc: Document): Document {
  if (op === 'createIndexes' || op === 'dropIndexes') {
    const indexes: unknown = desc.indexes;
    if (!Array.isArray(indexes) || indexes.length === 0) throw new EnvelopeFormatError(`${op} description needs a non-empty indexes array`);
    for (const spec of indexes) {
      if (!isPlainDocument(spec) || typeof spec.name !== 'string') throw new EnvelopeFormatError(`${op} description: every index needs a name`);
      if (op === 'createIndexes' && !isPlainDocument(spec.key)) throw new EnvelopeFormatError(`createIndexes description: index ${spec.name} has no key`);
    }
  }
  if (op === 'modify' && desc.index !== undefined && !isPlainDocument(desc.index)) {
    throw new EnvelopeFormatError('modify description: index must be a document');
  }
  return desc;
}
