import type { Options } from 'yargs';

/**
 * The options every command shares, in the groups `--help` shows. Names are part of the
 * product's interface (flags, MIGRATOR_* variables, config-file keys): later commands rely on them.
 * No default here may contain a secret: --help prints defaults.
 */
export const GROUPS = {
  source: 'Source:',
  target: 'Target:',
  state: 'State store:',
  kinesis: 'Kinesis:',
  namespaces: 'Namespaces:',
  runtime: 'Runtime and logging:',
} as const;

function endpointOptions(role: 'source' | 'target' | 'state', group: string, what: string): Record<string, Options> {
  return {
    [`${role}-uri`]: {
      type: 'string',
      group,
      describe:
        role === 'state'
          ? 'Connection string of the state store (default: the target)'
          : `Connection string of the ${what} (mongodb:// or mongodb+srv://)`,
    },
    [`${role}-tls`]: { type: 'boolean', group, describe: `Use TLS for the ${what} (DocumentDB: on)` },
    [`${role}-tls-ca-file`]: {
      type: 'string',
      group,
      describe: `CA bundle for the ${what}'s TLS certificate (DocumentDB: global-bundle.pem)`,
    },
    [`${role}-tls-allow-invalid-hostnames`]: {
      type: 'boolean',
      group,
      describe: `Accept a TLS certificate whose host name does not match (SSH tunnels to DocumentDB)`,
    },
    [`${role}-retry-writes`]: {
      type: 'boolean',
      group,
      describe: `Retryable writes; DocumentDB needs --no-${role}-retry-writes (default: from the URI, else on)`,
    },
  };
}

export const sharedOptions: Record<string, Options> = {
  ...endpointOptions('source', GROUPS.source, 'source'),
  ...endpointOptions('target', GROUPS.target, 'target'),
  ...endpointOptions('state', GROUPS.state, 'state store'),
  'state-db': { type: 'string', group: GROUPS.state, default: 'migrator_state', describe: 'Database of the state store' },
  'migration-id': {
    type: 'string',
    group: GROUPS.state,
    default: 'default',
    describe: 'Names this migration in the state store; several can share one store',
  },
  'kinesis-stream': { type: 'string', group: GROUPS.kinesis, describe: 'Kinesis data stream name or ARN (another account); without it, full-migrate runs an embedded kinesis-local under --data-dir' },
  'kinesis-endpoint': {
    type: 'string',
    group: GROUPS.kinesis,
    describe: 'Kinesis endpoint URL (VPC endpoint, LocalStack, kinesis-local)',
  },
  region: { type: 'string', group: GROUPS.kinesis, describe: 'AWS region (default: AWS_REGION, else us-east-1)' },
  'kinesis-http': {
    type: 'string',
    group: GROUPS.kinesis,
    choices: ['auto', 'http1', 'http2'],
    default: 'auto',
    describe: 'HTTP protocol to Kinesis: auto = HTTP/1.1 for custom http:// or loopback endpoints, SDK default otherwise',
  },
  include: {
    type: 'string',
    array: true,
    group: GROUPS.namespaces,
    describe: 'Namespaces to migrate, e.g. bar.* or bar.products (repeatable; default: all user databases)',
  },
  exclude: { type: 'string', array: true, group: GROUPS.namespaces, describe: 'Namespaces to leave out (repeatable)' },
  map: {
    type: 'string',
    array: true,
    group: GROUPS.namespaces,
    describe: 'Rename on the target: a database SRC_DB:DST_DB, or a collection srcdb.coll:dstdb.coll (repeatable)',
  },
  'time-series': {
    type: 'string',
    group: GROUPS.namespaces,
    choices: ['refuse', 'load-only'],
    default: 'refuse',
    describe: 'Time-series collections (change streams do not follow them): refuse = preflight stops on them; load-only = copy them once in the initial load, not kept in sync',
  },
  'data-dir': {
    type: 'string',
    group: GROUPS.runtime,
    default: './migrator-data',
    describe: 'Directory for local data (embedded transport, temporary files)',
  },
  'connect-timeout': {
    type: 'string',
    group: GROUPS.runtime,
    default: '10s',
    describe: 'How long to wait for a database to answer (e.g. 10s, 1m)',
  },
  'log-format': {
    type: 'string',
    group: GROUPS.runtime,
    choices: ['text', 'json'],
    default: 'text',
    describe: 'text for people, json lines for containers and CI',
  },
  verbose: { type: 'boolean', group: GROUPS.runtime, default: false, describe: 'Debug logs and stack traces' },
  config: { type: 'string', group: GROUPS.runtime, describe: 'Read options from a JSON or YAML file' },
};

/** The option names a config file may use (kebab-case, as the flags; camelCase accepted too). */
export const CONFIG_KEYS = new Set(Object.keys(sharedOptions).filter((k) => k !== 'config'));

/**
 * `--metrics-port` / `--metrics-host` of the long-running commands (full-migrate, initial-load,
 * capture, apply): the HTTP server of /metrics, /healthz, /readyz and /status
 * (src/observability/server.ts). Off unless a port is given.
 */
export const METRICS_GROUP = 'Metrics and health:';
export const metricsOptions: Record<string, Options> = {
  'metrics-port': {
    type: 'number',
    group: METRICS_GROUP,
    describe: 'Serve /metrics (Prometheus), /healthz, /readyz and /status on this port (0: any free port; default: off)',
  },
  'metrics-host': {
    type: 'string',
    group: METRICS_GROUP,
    default: '0.0.0.0',
    describe: 'Address the metrics server listens on (default all interfaces, as in a container; 127.0.0.1 for this machine only)',
  },
  'liveness-bound': {
    type: 'string',
    group: METRICS_GROUP,
    default: '5m',
    describe: '/healthz answers 503 (wedged) once a main loop made no progress for this long',
  },
};

/**
 * How the initial load is split and spread (full-migrate, initial-load, load-worker); also
 * MIGRATOR_PARTITION_SIZE / MIGRATOR_LOAD_PARALLELISM and the config-file keys of the same names.
 */
export const loadScaleOptions: Record<string, Options> = {
  'partition-size': {
    type: 'string',
    default: '1GiB',
    describe: 'Split collections larger than this into _id ranges of about this size, loaded in parallel and resumable one by one (e.g. 256MiB, 1GiB)',
  },
  'load-parallelism': {
    type: 'number',
    default: 2,
    describe: 'Load units (ranges, database pipes, index builds) this process runs at once; each is a mongodump | mongorestore pair',
  },
};
