// Builders of envelopes for apply tests.
import type { Document } from 'mongodb';
import type { ChangeEnvelope, CollectionNamespace, SchemaOp, UpdateDelta } from '../../src/model/change-envelope.js';
import type { Clock } from '../support/stream-positions.js';

const NS: CollectionNamespace = { db: 'bar', coll: 'products' };

export function ins(clock: Clock, doc: Document, ns: CollectionNamespace = NS): ChangeEnvelope {
  return { v: 1, op: 'insert', ns, key: { _id: doc._id }, doc, ...clock.next() };
}
export function rep(clock: Clock, doc: Document, ns: CollectionNamespace = NS): ChangeEnvelope {
  return { v: 1, op: 'replace', ns, key: { _id: doc._id }, doc, ...clock.next() };
}
export function updFull(clock: Clock, doc: Document | null, id: unknown, ns: CollectionNamespace = NS): ChangeEnvelope {
  return { v: 1, op: 'update', ns, key: { _id: id }, doc, ...clock.next() };
}
export function updDelta(clock: Clock, id: unknown, delta: Partial<UpdateDelta>, ns: CollectionNamespace = NS): ChangeEnvelope {
  return {
    v: 1,
    op: 'update',
    ns,
    key: { _id: id },
    upd: { updatedFields: delta.updatedFields ?? {}, removedFields: delta.removedFields ?? [], truncatedArrays: delta.truncatedArrays ?? [] },
    ...clock.next(),
  };
}
export function del(clock: Clock, id: unknown, ns: CollectionNamespace = NS): ChangeEnvelope {
  return { v: 1, op: 'delete', ns, key: { _id: id }, ...clock.next() };
}
export function drop(clock: Clock, ns: CollectionNamespace = NS): ChangeEnvelope {
  return { v: 1, op: 'drop', ns, ...clock.next() };
}
export function rename(clock: Clock, from: CollectionNamespace, to: CollectionNamespace): ChangeEnvelope {
  return { v: 1, op: 'rename', ns: from, to, ...clock.next() };
}
export function dropDb(clock: Clock, db: string): ChangeEnvelope {
  return { v: 1, op: 'dropDatabase', ns: { db }, ...clock.next() };
}
export function barrier(clock: Clock, id: string): ChangeEnvelope {
  return { v: 1, op: 'barrier', ns: { db: '' }, barrier: { id }, ...clock.next() };
}
export function schemaEvent(clock: Clock, op: SchemaOp, desc: Document, ns: CollectionNamespace = NS): ChangeEnvelope {
  return { v: 1, op, ns, desc, ...clock.next() };
}
