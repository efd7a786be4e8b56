/**
 * What capture reads from the source's change stream, and what each event becomes: the change
 * stream's pipeline, the envelope of an event (or none: a position only), and the idle heartbeat
 * that gives an idle stream a position where the source gives none.
 */
import type { Document, MongoClient, Timestamp } from 'mongodb';
import { retryTransient } from '../db/transient-retry.js';
import { UnsupportedChangeEventError, barrierEnvelope, envelopeFromChangeEvent, positionOf, type ChangeEnvelope } from '../model/change-envelope.js';
import type { NamespaceRules } from '../model/namespace-filter.js';
import { MigratorError, errorMessage } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';
import type { Logger } from '../util/logger.js';
import { isReopenable } from './capture-errors.js';
import { withCreateOptions } from './expanded-events.js';

/** The source collection whose inserts become cutover barriers (inside the state db's name). */
export const MARKER_COLLECTION = 'cutover_markers';
/**
 * The source collection (inside the state db) whose writes only move the stream's position: the
 * resume point's marker where the server gives no token (src/orchestration/resume-point.ts) and
 * capture's idle heartbeat. Never sent to Kinesis.
 */
export const POSITION_MARKER_COLLECTION = 'resume_markers';

/** The change stream's pipeline: the included namespaces, the cutover markers, the position markers. */
export function capturePipeline(rules: NamespaceRules): Document[] {
  return [
    {
      $match: {
        $or: [
          rules.changeStreamMatch().$match,
          { 'ns.db': rules.stateDb, 'ns.coll': MARKER_COLLECTION, operationType: 'insert' },
          { 'ns.db': rules.stateDb, 'ns.coll': POSITION_MARKER_COLLECTION },
        ],
      },
    },
  ];
}

export interface EventContext {
  source: MongoClient;
  rules: NamespaceRules;
  log: Logger;
  /** A stop while re-reading the source: the event gets no envelope and no position (see `envelopeOf`). */
  signal: AbortSignal;
}

/**
 * The envelope of one whole event: a barrier for a cutover marker, the change for an included
 * namespace; `undefined` for a position only (a position marker, an event the rules filter out,
 * a sharding or search-index event); `null` when the signal aborted meanwhile (the event must not
 * be recorded). Throws what must stop capture.
 */
export async function envelopeOf(c: EventContext, event: Document): Promise<ChangeEnvelope | undefined | null> {
  const ns = event.ns as Document | undefined;
  if (ns?.db === c.rules.stateDb && ns.coll === POSITION_MARKER_COLLECTION) return undefined; // position only
  if (ns?.db === c.rules.stateDb && ns.coll === MARKER_COLLECTION) {
    const id = String((event.documentKey as Document | undefined)?._id ?? '');
    c.log.info({ barrier: id }, 'cutover marker captured');
    return barrierEnvelope(id, positionOf({ ct: event.clusterTime as Timestamp, rt: event._id as Document }));
  }
  let envelope: ChangeEnvelope | undefined;
  try {
    // A create event gets the new collection's options (expanded-events.ts).
    const whole = event.operationType === 'create' ? await retryTransient('source', () => withCreateOptions(c.source, event), { signal: c.signal }) : event;
    envelope = envelopeFromChangeEvent(whole);
  } catch (err) {
    if (c.signal.aborted) return null; // stopped while retrying the source: nothing recorded for this event
    if (err instanceof UnsupportedChangeEventError && err.kind === 'ignorable') {
      // Sharding events (shardCollection, reshardCollection, refineCollectionShardKey) and
      // Atlas Search index events: how the target is sharded is the user's choice.
      c.log.info({ op: err.operationType, ns: ns ? `${String(ns.db)}.${String(ns.coll ?? '')}` : undefined }, 'change event not replayed on the target (sharding and search indexes are the target\'s own)');
      return undefined;
    }
    if (isReopenable(err)) throw err;
    throw new MigratorError(ExitCode.INTERNAL, `Capture stopped: ${errorMessage(err)}.`, { cause: err });
  }
  return c.rules.acceptsEnvelope(envelope) ? envelope : undefined;
}

/** Default idle heartbeat period. */
export const DEFAULT_IDLE_HEARTBEAT_MS = 5 * 60_000;

/**
 * IDLE HEARTBEAT: where idle batches carry no usable position (Amazon DocumentDB documents no
 * postBatchResumeToken, and its tokens hold no readable cluster time), an idle capture's
 * checkpoint would stay at its last event while the change stream log expires behind it
 * (change_stream_log_retention_duration, 3 h by default:
 * https://docs.aws.amazon.com/documentdb/latest/developerguide/change_streams.html), and a
 * restart after a quiet period would fail with history lost. A write to the position-marker
 * collection now and then gives the stream an event to checkpoint.
 */
export class IdleHeartbeat {
  private lastProgressAt: number;
  private inFlight: Promise<unknown> | undefined;

  /** `atStart`: false when capture started "now" (beat at once, so the start gets a checkpoint soon). */
  constructor(
    private readonly c: { source: MongoClient; stateDb: string; migrationId: string; log: Logger; everyMs?: number },
    atStart: boolean,
  ) {
    this.lastProgressAt = atStart ? Date.now() : 0;
  }

  /** The checkpoint can move without a heartbeat (an event, or an idle position with a cluster time). */
  progressed(): void {
    this.lastProgressAt = Date.now();
  }

  /** Idle without a position: writes a heartbeat if none was written for the period. */
  beat(): void {
    if (this.inFlight || Date.now() - this.lastProgressAt < (this.c.everyMs ?? DEFAULT_IDLE_HEARTBEAT_MS)) return;
    this.lastProgressAt = Date.now();
    this.inFlight = this.c.source
      .db(this.c.stateDb)
      .collection<{ _id: string; at: Date }>(POSITION_MARKER_COLLECTION)
      .updateOne({ _id: `heartbeat-${this.c.migrationId}` }, { $set: { at: new Date() } }, { upsert: true })
      .catch((err: unknown) => this.c.log.warn({ err: errorMessage(err) }, `idle heartbeat write to ${this.c.stateDb}.${POSITION_MARKER_COLLECTION} failed`))
      .finally(() => (this.inFlight = undefined));
  }
}
