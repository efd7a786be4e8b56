import { readFileSync } from 'node:fs';
import type { MongoClient } from 'mongodb';
import { health } from '../observability/health.js';
import { createMetricsRegistry } from '../observability/metrics.js';
import { StatusCache, startObservabilityServer, type ObservabilityServer } from '../observability/server.js';
import type { StateStore } from '../state/store.js';
import { UsageError, errorMessage } from '../util/errors.js';
import { parseDuration } from '../util/duration.js';
import type { Logger } from '../util/logger.js';

export interface MetricsArgs {
  'metrics-port'?: number;
  'metrics-host'?: string;
  'liveness-bound'?: string;
}

/** What a long-running command holds of its metrics server (a no-op without --metrics-port). */
export interface Observability {
  /** The bound port, when the server runs. */
  port: number | undefined;
  /** /status and the status-derived metrics read this store (cached, STATUS_CACHE_MS). */
  useStore(store: StateStore, migrationId: string): void;
  /** /readyz pings this database. */
  watchDatabase(name: string, client: MongoClient): void;
  close(): Promise<void>;
}

const NONE: Observability = { port: undefined, useStore: () => undefined, watchDatabase: () => undefined, close: async () => undefined };

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/**
 * Starts the metrics/health server of `command` when `--metrics-port` (MIGRATOR_METRICS_PORT, or
 * `metrics-port` in --config) is given. `gating`: the readiness components this command's /readyz
 * depends on (see HealthRegistry.readiness). A port that cannot be bound is a usage error (exit 2),
 * before anything else happens.
 */
export async function startObservability(
  argv: MetricsArgs,
  ctx: { command: string; migrationId: string; log: Logger; gating: readonly string[] },
): Promise<Observability> {
  const port = argv['metrics-port'];
  const bound = parseDuration(argv['liveness-bound'] ?? '5m');
  if (bound === undefined || bound < 1000) {
    throw new UsageError(`Invalid --liveness-bound (MIGRATOR_LIVENESS_BOUND): expected a duration of at least 1s, like 5m (got "${argv['liveness-bound']}").`);
  }
  health.defaultBoundMs = bound;
  if (port === undefined) return NONE;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`Invalid --metrics-port (MIGRATOR_METRICS_PORT): expected a port number 0-65535 (got ${String(port)}).`);
  }
  const host = argv['metrics-host'] || '0.0.0.0';
  const status = new StatusCache();
  const registry = createMetricsRegistry({
    command: ctx.command,
    migrationId: ctx.migrationId,
    version: version(),
    health,
    gating: ctx.gating,
    status: () => status.report(),
  });
  let server: ObservabilityServer;
  try {
    server = await startObservabilityServer({ host, port, registry, health, gating: ctx.gating, status });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(
      `Cannot serve metrics on ${host}:${port}: ${code === 'EADDRINUSE' ? 'the port is in use' : code === 'EADDRNOTAVAIL' ? 'no such local address' : errorMessage(err)}.`,
      'Choose another --metrics-port (MIGRATOR_METRICS_PORT) or --metrics-host (MIGRATOR_METRICS_HOST).',
    );
  }
  ctx.log.info({ host: server.host, port: server.port, endpoints: ['/metrics', '/healthz', '/readyz', '/status'] }, 'metrics server listening');
  return {
    port: server.port,
    useStore: (store, migrationId) => status.use(store, migrationId),
    watchDatabase: (name, client) => server.watchDatabase(name, client),
    close: () => server.close(),
  };
}
