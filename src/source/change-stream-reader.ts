/**
 * The source's change stream as capture reads it: one whole event at a time, in stream order.
 *
 * The reader owns opening, resuming and backing off (as the driver's ChangeStream owns resuming
 * while its cursor owns the position): after a transient error it reopens after the last event it
 * returned, with the backoff of util/retry.ts; it adapts the stream to what the source refuses
 * (the split stage, expanded events) and to events over 16 MiB (large-events.ts); it reassembles
 * split events. Its caller only processes events and positions.
 *
 * Every wait — a read blocked on the source, a backoff, a source re-read — ends as soon as the
 * signal aborts: `next()` then returns `undefined` (a stop during a source outage must end within
 * `docker stop`'s 10 s grace, not after a 30 s backoff or server selection).
 */
import type { ChangeStream, Document, MongoClient } from 'mongodb';
import { tryNextCachingToken } from '../db/change-stream-compat.js';
import { errorCode, isBsonObjectTooLarge } from '../db/mongo-errors.js';
import { retryTransient } from '../db/transient-retry.js';
import { EXACT_BSON_OPTIONS } from '../model/change-envelope.js';
import { MigratorError, errorMessage } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';
import type { Logger } from '../util/logger.js';
import { retry } from '../util/retry.js';
import { captureFailure, isReopenable } from './capture-errors.js';
import { expandedEventsSupported, isExpandedEventsRefused } from './expanded-events.js';
import { FragmentAssembler, SLIM_STAGE, SPLIT_STAGE, isSplitStageRefused, splitLargeEventSupported } from './large-events.js';

/** After an event over 16 MiB without split support: events read slim (documents re-read) before reopening as usual. */
const SLIM_WINDOW_EVENTS = 1000;
/** Reopening after a transient change stream error: 0.5–1 s, doubling, at most 30 s… */
const REOPEN_BACKOFF = { baseMs: 1000, maxMs: 30_000 };
/** …and at most 10 times in a row (a read that succeeds starts the count again). */
const MAX_REOPENS = 10;

export interface ChangeStreamReaderOptions {
  source: MongoClient;
  pipeline: Document[];
  /** Where the stream starts (`resumeAfter` / `startAtOperationTime` / nothing: now). */
  start: Document;
  /** The start, for messages ("the checkpoint (token …)"). */
  from: string;
  /** The source's version (buildInfo): whether to ask for split and expanded events. */
  version: string;
  /** getMore wait on an idle source (default 500 ms). */
  maxAwaitTimeMs?: number;
  /** Stops every read and wait: `next()` returns undefined. */
  signal: AbortSignal;
  log: Logger;
  /** Called on every successful read, an event or an idle getMore: progress either way. */
  onRead?: () => void;
}

export class ChangeStreamReader {
  private stream: ChangeStream | undefined;
  /** The newest token returned: everything up to it is with the caller, in order. Reopening resumes after it. */
  private lastSeen: Document | undefined;
  // Events over 16 MiB (see large-events.ts): split where the server has the stage; else, after
  // a BSONObjectTooLarge, a bounded "slim" window whose documents are re-read from the source.
  private useSplit: boolean;
  // SCHEMA EVENTS: create / createIndexes / dropIndexes / modify where the source has them
  // (expanded-events.ts); a refusal turns them off, like the split stage.
  private useExpanded: boolean;
  /** Events left in the slim window; -1: its last event was returned (reopen before reading on). */
  private slimLeft = 0;
  /** Events read in the current slim window (it ends on idle only after reading some). */
  private slimRead = 0;
  /** A read succeeded since the stream was opened (refusals of options come before). */
  private readOk = false;
  private readonly fragments = new FragmentAssembler();
  /** Settles with ABORTED when the signal aborts: one listener for the reader's life, raced with every read (hot path). */
  private readonly aborted: Promise<typeof ABORTED>;

  constructor(private readonly o: ChangeStreamReaderOptions) {
    this.useSplit = splitLargeEventSupported(o.version);
    this.useExpanded = expandedEventsSupported(o.version);
    this.aborted = abortedPromise(o.signal);
  }

  /** The token of the last event returned, for messages. */
  get after(): Document | undefined {
    return this.lastSeen;
  }

  /** The stream's current resume token (after an idle read: the postBatchResumeToken). */
  get resumeToken(): Document | undefined {
    return this.stream?.resumeToken as Document | undefined;
  }

  /** An idle position the caller recorded: a reopen resumes after it. */
  resumeAfter(token: Document): void {
    this.lastSeen = token;
  }

  /**
   * The next whole event (fragments reassembled; in a slim window, its documents re-read), `null`
   * when the source is idle (no fragment pending: `resumeToken` is a position after everything
   * returned), `undefined` once the signal aborted.
   */
  async next(): Promise<Document | null | undefined> {
    if (this.slimLeft < 0) {
      this.slimLeft = 0;
      this.o.log.info({ after: this.lastSeen }, 'slim window over: reading full change events again');
      await this.closeStream();
    }
    for (;;) {
      const read = await this.readWithRetry();
      if (read === undefined) return undefined;
      if (read === null) {
        if (this.slimLeft > 0 && this.slimRead > 0 && !this.fragments.pending) {
          // The slim window caught up with the source: back to full events.
          this.slimLeft = 0;
          this.o.log.info({ after: this.lastSeen }, 'past the large change event: reading full change events again');
          await this.closeStream();
          continue;
        }
        if (this.fragments.pending) continue;
        return null;
      }
      // Fragments of a split event: no position is recorded until the whole event is here.
      let event = this.fragments.add(read);
      if (event === undefined) continue;
      if (this.slimLeft > 0) {
        this.slimRead++;
        event = await this.reread(event);
        if (event === undefined) return undefined; // stopped while retrying the source: nothing returned for this event
        if (--this.slimLeft === 0) this.slimLeft = -1; // returned now; the window closes after it
      }
      this.lastSeen = event._id as Document;
      return event;
    }
  }

  async close(): Promise<void> {
    await this.closeStream();
  }

  private async closeStream(): Promise<void> {
    const stream = this.stream;
    this.stream = undefined;
    await stream?.close().catch(() => undefined);
  }

  private open(): ChangeStream {
    this.readOk = false;
    this.fragments.reset();
    const base = this.o.pipeline;
    const stages: Document[] = this.slimLeft > 0 ? [...base, SLIM_STAGE] : this.useSplit ? [...base, SPLIT_STAGE] : base;
    return this.o.source.watch(stages, {
      fullDocument: this.slimLeft > 0 ? 'default' : 'updateLookup',
      maxAwaitTimeMS: this.o.maxAwaitTimeMs ?? 500,
      batchSize: 2000,
      // Whatever the URI says: Amazon DocumentDB 4.0 opens change streams with primary read
      // preference only (https://docs.aws.amazon.com/documentdb/latest/developerguide/change_streams.html, Limitations).
      readPreference: 'primary',
      ...(this.useExpanded ? { showExpandedEvents: true } : {}),
      ...EXACT_BSON_OPTIONS,
      ...(this.lastSeen ? { resumeAfter: this.lastSeen } : this.o.start),
    });
  }

  /** The failure that ends capture with a documented exit code (history lost, foreign token), if `err` is one. */
  private failure(err: unknown): MigratorError | undefined {
    return captureFailure(err, this.o.from, Boolean(this.lastSeen ?? this.o.start.resumeAfter));
  }

  /** One read, reopening after transient errors with backoff (util/retry.ts); undefined once aborted. */
  private async readWithRetry(): Promise<Document | null | undefined> {
    try {
      return await retry(() => this.readOnce(), {
        isRetryable: (err) => !(err instanceof MigratorError) && !this.failure(err) && isReopenable(err),
        attempts: MAX_REOPENS + 1,
        signal: this.o.signal,
        backoff: REOPEN_BACKOFF,
        // The driver resumes by itself on most errors; when it gives up on a transient one,
        // reopen after the last token read (all events up to it are already with the caller).
        onRetry: ({ attempt, delayMs, error }) => this.o.log.warn({ err: errorMessage(error), attempt, delayMs }, 'change stream error; reopening'),
      });
    } catch (err) {
      if (this.o.signal.aborted) return undefined; // stopped during a backoff
      throw this.failure(err) ?? err;
    }
  }

  /** One read from the open (or a newly opened) stream; an error closes the stream. */
  private async readOnce(): Promise<Document | null | undefined> {
    for (;;) {
      const stream = (this.stream ??= this.open());
      try {
        // A read waits for the source (server selection: up to serverSelectionTimeoutMS during an
        // outage): a stop must not wait with it.
        const read = await Promise.race([tryNextCachingToken(stream), this.aborted]);
        if (read === ABORTED) return undefined;
        this.o.onRead?.();
        this.readOk = true;
        return read;
      } catch (err) {
        await this.closeStream();
        if (this.o.signal.aborted) return undefined;
        if (this.adaptTo(err)) continue; // reopened at once with other options
        throw err;
      }
    }
  }

  /** Changes the stream's options for what the source refused; true when a reopen may now succeed. */
  private adaptTo(err: unknown): boolean {
    const code = errorCode(err);
    if (this.useSplit && !this.readOk && isSplitStageRefused(code, errorMessage(err))) {
      this.useSplit = false;
      this.o.log.info({ err: errorMessage(err) }, 'the source refused $changeStreamSplitLargeEvent: capturing without it');
      return true;
    }
    if (this.useExpanded && !this.readOk && isExpandedEventsRefused(code, errorMessage(err))) {
      this.useExpanded = false;
      this.o.log.info({ err: errorMessage(err) }, 'the source refused showExpandedEvents: index and collection option changes are reconciled at the cutover instead of replayed');
      return true;
    }
    if (isBsonObjectTooLarge(err)) {
      // Reopening as before would hit the same event again, forever: read past it slim.
      if (this.slimLeft > 0) {
        throw new MigratorError(ExitCode.INTERNAL, `Capture stopped: a change event stays over 16 MiB even without its documents (${errorMessage(err)}).`, { cause: err });
      }
      this.slimLeft = SLIM_WINDOW_EVENTS;
      this.slimRead = 0;
      this.o.log.warn(
        { err: errorMessage(err), after: this.lastSeen, window: SLIM_WINDOW_EVENTS },
        'a change event is over 16 MiB (BSONObjectTooLarge): reading on without document images and sending the current state of each changed document, re-read by its key from the source',
      );
      return true;
    }
    return false;
  }

  /** Slim window: the event's documents as they are now on the source (see large-events.ts); undefined once aborted. */
  private async reread(event: Document): Promise<Document | undefined> {
    const op = event.operationType;
    if (op !== 'insert' && op !== 'update' && op !== 'replace') return event;
    const ns = event.ns as Document;
    let doc: Document | null;
    try {
      doc = await retryTransient(
        'source',
        () => this.o.source.db(String(ns.db)).collection(String(ns.coll)).findOne(event.documentKey as Document, { ...EXACT_BSON_OPTIONS }),
        { signal: this.o.signal },
      );
    } catch (err) {
      if (this.o.signal.aborted) return undefined;
      throw err;
    }
    if (op === 'update') return { ...event, fullDocument: doc ?? null }; // null: deleted since, its delete follows
    // Gone since: its delete follows; sending a delete now keeps the target right meanwhile.
    return doc ? { ...event, fullDocument: doc } : { ...event, operationType: 'delete' };
  }
}

const ABORTED = Symbol('aborted');

/**
 * ABORTED as soon as `signal` aborts (never settles otherwise). Raced with a read, it ends the wait
 * at once; the read's late outcome is ignored (Promise.race holds its handlers, so a late rejection
 * is not unhandled).
 */
function abortedPromise(signal: AbortSignal): Promise<typeof ABORTED> {
  if (signal.aborted) return Promise.resolve(ABORTED);
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(ABORTED), { once: true }));
}
