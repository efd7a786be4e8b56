/**
 * The HTTP server of `--metrics-port` (one per process, node:http):
 *
 *   GET /metrics   Prometheus text format (src/observability/metrics.ts)
 *   GET /healthz   liveness: 200 {"status":"ok",…} or 503 {"status":"wedged","reason":…}
 *   GET /readyz    readiness: 200 or 503 {"status":"not-ready","reason":…}
 *   GET /status    the JSON of `migrator status --json` for this process's migration
 *                  (404 while the migration does not exist, 503 before the state store is open)
 *
 * Every body goes through the redactor (util/redact.ts): no password of a connection string can
 * leave through it, whatever a driver error message says.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { MongoClient } from 'mongodb';
import type { Registry } from 'prom-client';
import { buildStatusReport, readStatusInputs, type StatusReport } from '../orchestration/status-report.js';
import type { StateStore } from '../state/store.js';
import { MigratorError, errorMessage } from '../util/errors.js';
import { redactText } from '../util/redact.js';
import type { HealthRegistry } from './health.js';
import { stats } from './stats.js';

/** How old a status report may be when /status or a scrape reuses it. */
export const STATUS_CACHE_MS = 2_000;
/**
 * How long a scrape waits for a fresh report before using the last one (state-store calls retry a
 * failover for up to 60 s: a scrape must not hang that long), and how long /status waits.
 */
export const STATUS_SCRAPE_WAIT_MS = 2_000;
export const STATUS_HTTP_WAIT_MS = 5_000;
/** Database pings of /readyz: reused this long, each given this long to answer. */
export const PING_CACHE_MS = 5_000;
export const PING_TIMEOUT_MS = 2_000;

type StatusResult = { report: StatusReport } | { error: unknown };

/**
 * The migration's status report, read from the state store at most once per `maxAgeMs` however
 * often it is asked for (one read in flight at a time).
 */
export class StatusCache {
  private source: { store: StateStore; migrationId: string } | undefined;
  private last: { at: number; result: StatusResult } | undefined;
  private inFlight: Promise<StatusResult> | undefined;
  private lastGood: StatusReport | undefined;

  constructor(private readonly maxAgeMs = STATUS_CACHE_MS) {}

  use(store: StateStore, migrationId: string): void {
    this.source = { store, migrationId };
    this.last = undefined;
  }

  get ready(): boolean {
    return this.source !== undefined;
  }

  async get(): Promise<StatusResult | undefined> {
    const src = this.source;
    if (!src) return undefined;
    if (this.last && Date.now() - this.last.at < this.maxAgeMs) return this.last.result;
    this.inFlight ??= (async (): Promise<StatusResult> => {
      try {
        return { report: buildStatusReport(await readStatusInputs(src.store, src.migrationId)) };
      } catch (err) {
        return { error: err };
      }
    })().then((result) => {
      this.last = { at: Date.now(), result };
      if ('report' in result) this.lastGood = result.report;
      this.inFlight = undefined;
      return result;
    });
    return this.inFlight;
  }

  /** A fresh report if one comes within `waitMs`, else the last one read (undefined: none yet). */
  async report(waitMs = STATUS_SCRAPE_WAIT_MS): Promise<StatusReport | undefined> {
    const r = await within(this.get(), waitMs);
    if (r === TIMED_OUT) return this.lastGood;
    return r && 'report' in r ? r.report : undefined;
  }
}

const TIMED_OUT = Symbol('timed out');

async function within<T>(p: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<typeof TIMED_OUT>((r) => (timer = setTimeout(() => r(TIMED_OUT), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

export interface ObservabilityServerOptions {
  host: string;
  port: number;
  registry: Registry;
  health: HealthRegistry;
  /** Components whose readiness gates /readyz. */
  gating: readonly string[];
  status: StatusCache;
}

export interface ObservabilityServer {
  /** The address actually bound (port 0 picks a free one). */
  host: string;
  port: number;
  /** Databases /readyz pings (added as the command connects them). */
  watchDatabase(name: string, client: MongoClient): void;
  close(): Promise<void>;
}

function send(res: ServerResponse, code: number, body: string, type = 'application/json; charset=utf-8'): void {
  const text = redactText(body);
  res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

const json = (v: unknown) => JSON.stringify(v, null, 2) + '\n';

/** The databases /readyz pings, each answer cached for PING_CACHE_MS (a probe never floods the servers). */
class DatabasePings {
  readonly databases = new Map<string, MongoClient>();
  private readonly pings = new Map<string, { at: number; result: Promise<string | undefined> }>();

  /** undefined = answered; otherwise why not. */
  ping(name: string, client: MongoClient): Promise<string | undefined> {
    const cached = this.pings.get(name);
    if (cached && Date.now() - cached.at < PING_CACHE_MS) return cached.result;
    let timer: NodeJS.Timeout | undefined;
    const result = Promise.race([
      client.db('admin').command({ ping: 1 }).then(() => undefined, (err: unknown) => errorMessage(err)),
      new Promise<string>((r) => (timer = setTimeout(() => r(`no answer to ping within ${PING_TIMEOUT_MS} ms`), PING_TIMEOUT_MS))),
    ]).finally(() => clearTimeout(timer));
    this.pings.set(name, { at: Date.now(), result });
    return result;
  }
}

/** /readyz: the gating components, every watched database's ping, and the stream's last answer. */
async function readiness(o: ObservabilityServerOptions, dbs: DatabasePings) {
  const r = o.health.readiness(o.gating);
  const reasons = r.ok ? [] : [r.reason!];
  const connections: Record<string, string> = {};
  const answers = await Promise.all([...dbs.databases].map(async ([name, client]) => [name, await dbs.ping(name, client)] as const));
  for (const [name, why] of answers) {
    connections[name] = why ?? 'ok';
    if (why) reasons.push(`${name}: ${why}`);
  }
  // The stream: its last answer (throttling counts as an answer), from the calls the pipeline makes anyway.
  const k = stats.kinesis;
  if (k.lastOkAtMs > 0 || k.lastErrorAtMs > 0) {
    const failing = k.lastErrorAtMs > k.lastOkAtMs;
    connections.kinesis = failing ? `the last call failed at ${new Date(k.lastErrorAtMs).toISOString()}` : 'ok';
    if (failing) reasons.push('kinesis: the last call to the stream failed');
  }
  return { ok: reasons.length === 0, reason: reasons.join('; '), components: r.components, connections };
}

/** /status: the cached status report, or why there is none (404 for a known error, else 503). */
async function sendStatus(o: ObservabilityServerOptions, res: ServerResponse): Promise<void> {
  const r = await within(o.status.get(), STATUS_HTTP_WAIT_MS);
  if (r === TIMED_OUT) return send(res, 503, json({ error: `the state store did not answer within ${STATUS_HTTP_WAIT_MS} ms` }));
  if (!r) return send(res, 503, json({ error: 'not connected to the state store yet' }));
  if ('report' in r) return send(res, 200, json(r.report));
  const known = r.error instanceof MigratorError ? r.error : undefined;
  return send(res, known ? 404 : 503, json({ error: errorMessage(r.error), ...(known?.hint ? { hint: known.hint } : {}) }));
}

async function handle(o: ObservabilityServerOptions, dbs: DatabasePings, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, json({ error: 'only GET' }));
  switch (path) {
    case '/metrics':
      return send(res, 200, await o.registry.metrics(), o.registry.contentType);
    case '/healthz': {
      const l = o.health.liveness();
      return send(res, l.ok ? 200 : 503, json({ status: l.ok ? 'ok' : 'wedged', ...(l.reason ? { reason: l.reason } : {}), loops: l.loops }));
    }
    case '/readyz': {
      const r = await readiness(o, dbs);
      return send(
        res,
        r.ok ? 200 : 503,
        json({ status: r.ok ? 'ready' : 'not-ready', ...(r.ok ? {} : { reason: r.reason }), components: r.components, connections: r.connections }),
      );
    }
    case '/status':
      return sendStatus(o, res);
    default:
      return send(res, 404, json({ error: 'not found', endpoints: ['/metrics', '/healthz', '/readyz', '/status'] }));
  }
}

/** Starts the server; rejects (e.g. EADDRINUSE) when it cannot listen. */
export async function startObservabilityServer(o: ObservabilityServerOptions): Promise<ObservabilityServer> {
  const dbs = new DatabasePings();
  const sampler = setInterval(() => o.health.sample(), 1000);
  sampler.unref();
  const server: Server = createServer((req, res) => {
    handle(o, dbs, req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, json({ error: errorMessage(err) }));
      else res.destroy();
    });
  });
  // A probe must never keep the process alive, nor a slow client hold a socket for long.
  server.requestTimeout = 10_000;
  server.headersTimeout = 10_000;
  server.keepAliveTimeout = 5_000;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.port, o.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    clearInterval(sampler);
    throw err;
  }
  server.unref();
  const addr = server.address() as AddressInfo;
  return {
    host: addr.address,
    port: addr.port,
    watchDatabase: (name, client) => void dbs.databases.set(name, client),
    close: async () => {
      clearInterval(sampler);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
