/**
 * Expanded change events (`showExpandedEvents: true` on $changeStream, "New in version 6.0":
 * https://www.mongodb.com/docs/manual/reference/change-events/#expanded-events): create,
 * createIndexes, dropIndexes, modify, shardCollection, … Capture asks for them where the source
 * has them, so apply can replay schema changes made during replication (schema-replay.ts).
 *
 * Sources without them: MongoDB before 6.0 (the $changeStream stage's strict parser refuses the
 * unknown field, 40415) and Amazon DocumentDB (its supported $changeStream options do not list
 * it: https://docs.aws.amazon.com/documentdb/latest/developerguide/change_streams.html). There the
 * cutover reconciles indexes and options instead (orchestration/schema-reconcile.ts).
 */
import { BSON, type Document, type MongoClient } from 'mongodb';
import { EXACT_BSON_OPTIONS } from '../model/change-envelope.js';
import { MongoErrorCode } from '../db/mongo-errors.js';

/** Error code of an unknown field in a command's or stage's strict parser (IDL). */
const UNKNOWN_FIELD = MongoErrorCode.UnknownField;

/** Whether the source's version has showExpandedEvents (MongoDB 6.0+; DocumentDB reports 4.0/5.0). */
export function expandedEventsSupported(version: string): boolean {
  const major = Number.parseInt(version.split('.')[0] ?? '', 10) || 0;
  return major >= 6;
}

/** The source refused the option (whatever its version says). */
export function isExpandedEventsRefused(code: number | undefined, message: string): boolean {
  return code === UNKNOWN_FIELD || /showExpandedEvents/.test(message);
}

const bytes = (v: unknown) => Buffer.from(BSON.serialize({ v })).toString('hex');

/**
 * A `create` event with the new collection's options. The manual documents only `idIndex` in the
 * create event's operationDescription (https://www.mongodb.com/docs/manual/reference/change-events/create/);
 * whether the collation, validator, capped size, … are there too is undocumented. So when the
 * description holds nothing but `idIndex`, the options are read from the source's listCollections
 * (`options`, and `info.uuid`: https://www.mongodb.com/docs/manual/reference/command/listCollections/#output)
 * — only from the collection the event is about: its `collectionUUID` (documented on the create
 * page) must be the listed one's `info.uuid`. A collection dropped (or dropped and re-created)
 * since is left as the event says: its later events follow, and the cutover reconcile compares
 * the final options anyway. Options read now may include collMods made after the create; their
 * modify events replay the same values again (idempotent).
 */
export async function withCreateOptions(source: MongoClient, event: Document): Promise<Document> {
  if (event.operationType !== 'create') return event;
  const desc = (event.operationDescription ?? {}) as Document;
  if (Object.keys(desc).some((k) => k !== 'idIndex')) return event;
  const ns = event.ns as Document | undefined;
  if (typeof ns?.db !== 'string' || typeof ns.coll !== 'string') return event;
  const [info] = await source.db(ns.db).listCollections({ name: ns.coll }, { nameOnly: false, ...EXACT_BSON_OPTIONS }).toArray();
  if (!info) return event;
  const listedUuid = (info as { info?: Document }).info?.uuid;
  if (event.collectionUUID === undefined || listedUuid === undefined || bytes(listedUuid) !== bytes(event.collectionUUID)) return event;
  const options = ((info as { options?: Document }).options ?? {}) as Document;
  return { ...event, operationDescription: { ...options, ...desc } };
}
