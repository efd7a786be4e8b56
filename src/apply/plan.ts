/**
 * Pure planning of one apply batch: de-duplication, namespace filtering/mapping, splitting at
 * DDL, collapsing each document's events to its last state, and the bulk operations to send.
 *
 * A batch is the envelopes of ONE Kinesis shard, in stream order. Every event of a document
 * travels in one shard (see routingKey), so within a shard the order of a document's events is
 * the source order.
 */
import { createHash } from 'node:crypto';
import type { AnyBulkWriteOperation, Document } from 'mongodb';
import {
  DDL_OPS,
  documentIdentityBytes,
  isAtOrBefore,
  positionOf,
  type ChangeEnvelope,
  type CollectionNamespace,
  type EventPosition,
  type UpdateDelta,
} from '../model/change-envelope.js';
import type { NamespaceRules } from '../model/namespace-filter.js';

// ---------------------------------------------------------------------------------------------
// De-duplication

export interface DedupResult {
  /** Input indexes to process, in order (barriers always kept). */
  keep: number[];
  /** Input indexes skipped because they are at or before the last applied position. */
  skipped: number[];
  /** The highest position among kept data/DDL envelopes, or `after` if none. */
  last: EventPosition | undefined;
}

/**
 * Skips envelopes at or before `after` (the shard's last applied position) and any envelope at or
 * before one already kept in this batch. Invariant: a capture restart that re-sends events
 * never makes apply go back to an older state of a document. Barriers are never skipped: they
 * carry no data and the caller handles them idempotently by id.
 */
export function dedupeEnvelopes(envelopes: readonly ChangeEnvelope[], after?: EventPosition): DedupResult {
  const keep: number[] = [];
  const skipped: number[] = [];
  let last = after;
  envelopes.forEach((e, index) => {
    if (e.op === 'barrier') {
      keep.push(index);
      return;
    }
    const p = positionOf(e);
    if (last !== undefined && isAtOrBefore(p, last)) {
      skipped.push(index);
      return;
    }
    keep.push(index);
    last = p;
  });
  return { keep, skipped, last };
}

// ---------------------------------------------------------------------------------------------
// Document operations

export type KeyFilterMode = 'documentKey' | 'id';

export type DocOp =
  | { kind: 'upsert'; filter: Document; doc: Document }
  | { kind: 'delete'; filter: Document }
  | { kind: 'update'; filter: Document; update: Document };

export interface PlannedOp {
  op: DocOp;
  /** Input index of the envelope this op comes from. */
  index: number;
}

export interface DocPlan {
  /** Hex digest of the document identity (namespace + `_id`). */
  id: string;
  key: Document;
  /**
   * Ops to run in this order. Invariant: at most one full-state op (upsert/delete), and only
   * first; it is followed by the delta updates that came after it in the stream.
   */
  ops: PlannedOp[];
  /**
   * Every op of the document in this segment, superseded ones included, in stream order: the
   * intermediate states replayed one by one when the collapsed state hits a unique-index
   * conflict (two documents swapping a unique value through a temporary one).
   */
  history: PlannedOp[];
}

export interface CollectionPlan {
  target: CollectionNamespace;
  /** Documents in order of first appearance. */
  docs: DocPlan[];
}

export type Segment =
  | { kind: 'data'; collections: CollectionPlan[]; lastIndex: number; collapsed: number; skippedNullDoc: number }
  | { kind: 'ddl'; index: number; envelope: ChangeEnvelope };

/**
 * The updates reproducing one change-stream update description, in order: array truncations
 * first (`$push` with empty `$each` and `$slice`, which cannot share an update with a `$set`
 * of an element of the same array), then `$set`/`$unset`. Empty operators are omitted.
 *
 * Limitation: field names containing dots or starting with `$` are ambiguous in an update
 * description (MongoDB 5.0+ allows them); use `fullDocument: 'updateLookup'` for such data.
 */
export function deltaToUpdates(delta: UpdateDelta): Document[] {
  const updates: Document[] = [];
  if (delta.truncatedArrays.length > 0) {
    const push: Document = {};
    for (const t of delta.truncatedArrays) push[t.field] = { $each: [], $slice: t.newSize };
    updates.push({ $push: push });
  }
  const update: Document = {};
  if (Object.keys(delta.updatedFields).length > 0) update.$set = delta.updatedFields;
  if (delta.removedFields.length > 0) update.$unset = Object.fromEntries(delta.removedFields.map((f) => [f, '']));
  if (Object.keys(update).length > 0) updates.push(update);
  return updates;
}

export function keyFilter(key: Document, mode: KeyFilterMode): Document {
  return mode === 'id' && '_id' in key ? { _id: key._id } : key;
}

export function toBulkOperation(op: DocOp): AnyBulkWriteOperation {
  switch (op.kind) {
    case 'upsert':
      return { replaceOne: { filter: op.filter, replacement: op.doc, upsert: true } };
    case 'delete':
      return { deleteOne: { filter: op.filter } };
    case 'update':
      return { updateOne: { filter: op.filter, update: op.update } };
  }
}

function identityHash(ns: CollectionNamespace, key: Document): string {
  return createHash('sha1').update(documentIdentityBytes(ns.db, ns.coll, key)).digest('hex');
}

// ---------------------------------------------------------------------------------------------
// Segmentation and collapsing

export interface PlanOptions {
  keyFilter?: KeyFilterMode;
}

export interface BatchPlan {
  segments: Segment[];
  /** Indexes skipped by the namespace rules. */
  filtered: number[];
  barriers: { id: string; index: number }[];
}

/**
 * Plans the kept envelopes (indexes into `envelopes`, from {@link dedupeEnvelopes}).
 * DDL splits the batch: everything before it forms its own data segment, written first.
 */
export function planBatch(
  envelopes: readonly ChangeEnvelope[],
  keep: readonly number[],
  rules: NamespaceRules,
  options: PlanOptions = {},
): BatchPlan {
  const segments: Segment[] = [];
  const filtered: number[] = [];
  const barriers: { id: string; index: number }[] = [];
  const data = new DataSegmentBuilder(rules, options.keyFilter ?? 'documentKey');
  for (const index of keep) {
    const e = envelopes[index]!;
    if (e.op === 'barrier') {
      barriers.push({ id: e.barrier!.id, index });
    } else if (!rules.acceptsEnvelope(e)) {
      filtered.push(index);
    } else if ((DDL_OPS as readonly string[]).includes(e.op)) {
      // Every DDL (drop, rename, dropDatabase and the schema ops create, createIndexes,
      // dropIndexes, modify) is a segment of its own: the data before it is written first, the
      // data after it after it, and the caller passes it through the DDL gate (ddl-gate.ts).
      data.flushInto(segments);
      segments.push({ kind: 'ddl', index, envelope: e });
    } else {
      data.add(e, index);
    }
  }
  data.flushInto(segments);
  // Drop documents left without ops (only null-doc updates).
  for (const s of segments) {
    if (s.kind === 'data') {
      for (const c of s.collections) c.docs = c.docs.filter((d) => d.ops.length > 0);
      s.collections = s.collections.filter((c) => c.docs.length > 0);
    }
  }
  return { segments, filtered, barriers };
}

/** The data events between two DDLs: per target collection, per document, the ops to write. */
class DataSegmentBuilder {
  private collections = new Map<string, CollectionPlan>();
  private docs = new Map<string, DocPlan>();
  private count = 0;
  private collapsed = 0;
  private skippedNullDoc = 0;
  private lastIndex = -1;

  constructor(
    private readonly rules: NamespaceRules,
    private readonly mode: KeyFilterMode,
  ) {}

  /** Adds a data event (insert, replace, update, delete) of an accepted namespace. */
  add(e: ChangeEnvelope, index: number): void {
    this.count++;
    this.lastIndex = index;
    const doc = this.docPlan(e);
    const filter = keyFilter(e.key!, this.mode);
    switch (e.op) {
      case 'insert':
      case 'replace':
        this.fullState(doc, e, index, { kind: 'upsert', filter, doc: e.doc! });
        break;
      case 'delete':
        this.fullState(doc, e, index, { kind: 'delete', filter });
        break;
      case 'update':
        if (e.doc === null) {
          // Deleted after the event; its delete event follows. Nothing to write.
          this.skippedNullDoc++;
        } else if (e.doc !== undefined) {
          this.fullState(doc, e, index, { kind: 'upsert', filter, doc: e.doc });
        } else {
          for (const update of deltaToUpdates(e.upd!)) {
            doc.ops.push({ op: { kind: 'update', filter, update }, index });
            doc.history.push({ op: { kind: 'update', filter, update }, index });
          }
        }
        break;
    }
  }

  /** Ends the segment: appends it to `segments` when it holds a data event, and starts a new one. */
  flushInto(segments: Segment[]): void {
    if (this.count > 0) {
      const { collapsed, skippedNullDoc, lastIndex } = this;
      segments.push({ kind: 'data', collections: [...this.collections.values()], lastIndex, collapsed, skippedNullDoc });
    }
    this.collections = new Map();
    this.docs = new Map();
    this.count = 0;
    this.collapsed = 0;
    this.skippedNullDoc = 0;
  }

  /** The plan of the event's document (by target namespace and key), created on first sight. */
  private docPlan(e: ChangeEnvelope): DocPlan {
    const target = this.rules.target({ db: e.ns.db, coll: e.ns.coll! });
    const tKey = `${target.db}.${target.coll}`;
    let coll = this.collections.get(tKey);
    if (!coll) {
      coll = { target, docs: [] };
      this.collections.set(tKey, coll);
    }
    const id = identityHash(target, e.key!);
    let doc = this.docs.get(id);
    if (!doc) {
      doc = { id, key: e.key!, ops: [], history: [] };
      this.docs.set(id, doc);
      coll.docs.push(doc);
    }
    return doc;
  }

  /** An op that sets the document's whole state: earlier events of this document are superseded. */
  private fullState(doc: DocPlan, e: ChangeEnvelope, index: number, op: DocOp): void {
    this.collapsed += new Set(doc.ops.map((o) => o.index)).size;
    doc.ops = [{ op, index }];
    doc.history.push({ op, index });
    doc.key = e.key!;
  }
}

/**
 * Round `r` of a collection: the r-th op of every document that has one. Invariant: one bulk
 * write never holds two ops of the same document, so their order does not depend on how the
 * server or driver orders an unordered bulk (the driver groups unordered ops by type).
 */
export function rounds(plan: CollectionPlan): { doc: DocPlan; planned: PlannedOp }[][] {
  const out: { doc: DocPlan; planned: PlannedOp }[][] = [];
  for (const doc of plan.docs) {
    doc.ops.forEach((planned, r) => {
      (out[r] ??= []).push({ doc, planned });
    });
  }
  return out;
}
