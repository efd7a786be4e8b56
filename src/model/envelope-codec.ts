/** The change envelope's BSON encoding (see change-envelope.ts for the format and its guarantees). */
import { BSON, type Document } from 'mongodb';
import type { ChangeEnvelope, EnvelopeOp } from './change-envelope.js';
import { DATA_OPS, DDL_OPS, ENVELOPE_VERSION, isSchemaOp, schemaDescription } from './envelope-ops.js';
import { EXACT_BSON_OPTIONS, EnvelopeFormatError, isPlainDocument, isTimestamp, requireString, toNumber } from './envelope-values.js';

/** Encodes an envelope as BSON. Field order is fixed; absent optional fields are omitted. */
export function encodeEnvelope(e: ChangeEnvelope): Uint8Array {
  // Build in a fixed order; never serialise `undefined` members of the envelope itself (inside
  // documents the bson library's default applies: `undefined` → null, as the driver does).
  const out: Document = { v: e.v, op: e.op, ns: e.ns.coll === undefined ? { db: e.ns.db } : { db: e.ns.db, coll: e.ns.coll } };
  if (e.to !== undefined) out.to = { db: e.to.db, coll: e.to.coll };
  if (e.desc !== undefined) out.desc = e.desc;
  if (e.key !== undefined) out.key = e.key;
  if (e.doc !== undefined) out.doc = e.doc;
  if (e.upd !== undefined) {
    out.upd = {
      updatedFields: e.upd.updatedFields,
      removedFields: e.upd.removedFields,
      truncatedArrays: e.upd.truncatedArrays.map((t) => ({ field: t.field, newSize: t.newSize })),
    };
  }
  out.ct = e.ct;
  if (e.wt !== undefined) out.wt = e.wt;
  out.rt = e.rt;
  if (e.barrier !== undefined) out.barrier = { id: e.barrier.id };
  if (e.origin !== undefined) out.origin = { sent: e.origin.sent };
  if (e.mig !== undefined) out.mig = e.mig;
  return BSON.serialize(out, { checkKeys: false, serializeFunctions: false });
}

/**
 * Decodes an envelope. Document contents (`key`, `doc`, `upd.updatedFields`, `rt`) keep their
 * exact BSON types (Int32/Double/Long wrappers, BSONRegExp, Binary, …) so that writing them
 * back through the driver produces the same BSON; envelope scalars are normalised to JS values.
 */
export function decodeEnvelope(buf: Uint8Array): ChangeEnvelope {
  let raw: Document;
  try {
    raw = BSON.deserialize(buf, { ...EXACT_BSON_OPTIONS });
  } catch (err) {
    throw new EnvelopeFormatError(`not a BSON envelope: ${(err as Error).message}`);
  }
  const v = raw.v === undefined ? undefined : toNumber(raw.v, 'v');
  if (v !== ENVELOPE_VERSION) {
    throw new EnvelopeFormatError(`unsupported envelope version ${String(v)} (this build reads ${ENVELOPE_VERSION})`);
  }
  const op = requireString(raw.op, 'op');
  if (![...DATA_OPS, ...DDL_OPS, 'barrier', 'origin'].includes(op)) {
    throw new EnvelopeFormatError(`unknown envelope op '${op}'`);
  }
  const ns = raw.ns as Document | undefined;
  if (!ns) throw new EnvelopeFormatError('envelope without ns');
  if (!isTimestamp(raw.ct)) throw new EnvelopeFormatError('envelope ct must be a Timestamp');
  if (!isPlainDocument(raw.rt)) throw new EnvelopeFormatError('envelope rt must be a document');

  const e: ChangeEnvelope = {
    v: ENVELOPE_VERSION,
    op: op as EnvelopeOp,
    ns: ns.coll === undefined
      ? { db: requireString(ns.db, 'ns.db') }
      : { db: requireString(ns.db, 'ns.db'), coll: requireString(ns.coll, 'ns.coll') },
    ct: raw.ct,
    rt: raw.rt,
  };
  if (raw.to !== undefined) {
    const to = raw.to as Document;
    e.to = { db: requireString(to.db, 'to.db'), coll: requireString(to.coll, 'to.coll') };
  }
  if (raw.desc !== undefined) {
    if (!isPlainDocument(raw.desc)) throw new EnvelopeFormatError('envelope desc must be a document');
    e.desc = raw.desc;
  }
  if (raw.key !== undefined) e.key = raw.key as Document;
  if (raw.doc !== undefined) e.doc = raw.doc as Document | null;
  if (raw.upd !== undefined) {
    const u = raw.upd as Document;
    e.upd = {
      updatedFields: (u.updatedFields as Document | undefined) ?? {},
      removedFields: ((u.removedFields as unknown[] | undefined) ?? []).map((f) => requireString(f, 'upd.removedFields[]')),
      truncatedArrays: ((u.truncatedArrays as Document[] | undefined) ?? []).map((t) => ({
        field: requireString(t.field, 'upd.truncatedArrays[].field'),
        newSize: toNumber(t.newSize, 'upd.truncatedArrays[].newSize'),
      })),
    };
  }
  if (raw.wt instanceof Date) e.wt = raw.wt;
  if (raw.barrier !== undefined) e.barrier = { id: requireString((raw.barrier as Document).id, 'barrier.id') };
  if (raw.mig !== undefined) e.mig = requireString(raw.mig, 'mig');
  if (raw.origin !== undefined) e.origin = { sent: toNumber((raw.origin as Document).sent, 'origin.sent') };

  if ((DATA_OPS as readonly string[]).includes(op)) {
    if (e.ns.coll === undefined || !e.key) throw new EnvelopeFormatError(`${op} envelope needs ns.coll and key`);
    if ((op === 'insert' || op === 'replace') && !e.doc) throw new EnvelopeFormatError(`${op} envelope needs doc`);
    if (op === 'update' && e.doc === undefined && !e.upd) throw new EnvelopeFormatError('update envelope needs doc or upd');
  }
  if (op === 'rename' && (!e.to || e.ns.coll === undefined)) throw new EnvelopeFormatError('rename envelope needs ns.coll and to');
  if (op === 'drop' && e.ns.coll === undefined) throw new EnvelopeFormatError('drop envelope needs ns.coll');
  if (isSchemaOp(op)) {
    if (e.ns.coll === undefined || !e.desc) throw new EnvelopeFormatError(`${op} envelope needs ns.coll and desc`);
    try {
      schemaDescription(op, e.desc);
    } catch (err) {
      throw new EnvelopeFormatError(`${op} envelope: ${(err as Error).message}`);
    }
  }
  if (op === 'barrier' && !e.barrier) throw new EnvelopeFormatError('barrier envelope needs barrier.id');
  if (op === 'origin' && !e.origin) throw new EnvelopeFormatError('origin envelope needs origin.sent');
  return e;
}
