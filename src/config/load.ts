import { existsSync } from 'node:fs';
import { UsageError } from '../util/errors.js';
import { registerEnvSecrets, registerUriSecrets } from '../util/redact.js';
import { FIELD_FLAGS, configSchema, type EndpointConfig, type MigratorConfig } from './schema.js';
import { isStreamArn, parseStreamArn } from '../model/stream-ref.js';

export type { MigratorConfig, EndpointConfig };

/** The parsed argv (flags > MIGRATOR_* environment > config file > defaults, merged by yargs). */
export type RawArgs = Record<string, unknown>;

function list(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  const items = Array.isArray(v) ? v : [v];
  // Environment variables hold lists as "a.*,b.*".
  return items.flatMap((x) => String(x).split(',')).map((s) => s.trim()).filter((s) => s.length > 0);
}

function endpoint(args: RawArgs, role: 'source' | 'target' | 'state'): Record<string, unknown> | undefined {
  const uri = args[`${role}-uri`];
  if (uri === undefined || uri === '') return undefined;
  const e: Record<string, unknown> = { uri };
  const set = (key: string, flag: string) => {
    if (args[flag] !== undefined) e[key] = args[flag];
  };
  set('tls', `${role}-tls`);
  set('tlsCAFile', `${role}-tls-ca-file`);
  set('tlsAllowInvalidHostnames', `${role}-tls-allow-invalid-hostnames`);
  set('retryWrites', `${role}-retry-writes`);
  return e;
}

/**
 * Validates the merged arguments into a typed configuration. A bad value produces one UsageError
 * naming the option and what is expected; secrets are registered for redaction before anything
 * else can print them.
 */
export function resolveConfig(args: RawArgs): MigratorConfig {
  for (const role of ['source', 'target', 'state']) {
    const uri = args[`${role}-uri`];
    if (typeof uri === 'string') registerUriSecrets(uri);
  }
  registerEnvSecrets();
  const arnRegion = (stream: unknown) => (typeof stream === 'string' ? parseStreamArn(stream)?.region : undefined);

  const raw = {
    source: endpoint(args, 'source'),
    target: endpoint(args, 'target'),
    state: endpoint(args, 'state'),
    stateDb: args['state-db'],
    migrationId: args['migration-id'],
    kinesis: {
      stream: args['kinesis-stream'] || undefined,
      endpoint: args['kinesis-endpoint'] || undefined,
      // A stream ARN names its region: it is the default, and an explicit --region must agree.
      region: args.region || arnRegion(args['kinesis-stream']) || process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || 'us-east-1',
      http: args['kinesis-http'] ?? 'auto',
    },
    namespaces: { include: list(args.include), exclude: list(args.exclude), map: list(args.map) },
    timeSeries: args['time-series'] ?? 'refuse',
    dataDir: args['data-dir'],
    connectTimeoutMs: String(args['connect-timeout'] ?? '10s'),
    logFormat: args['log-format'] ?? 'text',
    verbose: Boolean(args.verbose),
  };
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const path = issue.path.filter((p) => typeof p === 'string').join('.');
    const flag = FIELD_FLAGS[path] ?? path;
    const env = 'MIGRATOR_' + flag.toUpperCase().replace(/-/g, '_');
    throw new UsageError(`Invalid --${flag} (${env}): ${issue.message}.`);
  }
  const config = parsed.data;
  const arn = config.kinesis.stream && isStreamArn(config.kinesis.stream) ? parseStreamArn(config.kinesis.stream) : undefined;
  if (config.kinesis.stream && isStreamArn(config.kinesis.stream) && !arn) {
    throw new UsageError(
      `Invalid --kinesis-stream (MIGRATOR_KINESIS_STREAM): "${config.kinesis.stream}" is not a Kinesis stream ARN.`,
      'Give a stream name, or an ARN like arn:aws:kinesis:eu-west-1:123456789012:stream/NAME.',
    );
  }
  if (arn && config.kinesis.region !== arn.region) {
    throw new UsageError(
      `--region ${config.kinesis.region} does not match the region of the stream ARN (${arn.region}).`,
      'Drop --region (the ARN names it) or give the ARN of a stream in that region.',
    );
  }
  for (const role of ['source', 'target', 'state'] as const) {
    const ca = config[role]?.tlsCAFile;
    if (ca && !existsSync(ca)) {
      throw new UsageError(`TLS CA file for the ${role} not found: ${ca}.`, `Check --${role}-tls-ca-file.`);
    }
  }
  return config;
}

/** The state store connection: --state-uri, else the target's. */
export function stateEndpoint(config: MigratorConfig): EndpointConfig | undefined {
  return config.state ?? config.target;
}

export function requireEndpoint(config: MigratorConfig, role: 'source' | 'target'): EndpointConfig {
  const e = config[role];
  if (!e) {
    throw new UsageError(
      `Missing --${role}-uri.`,
      `Give it as a flag, as MIGRATOR_${role.toUpperCase()}_URI, or as "${role}-uri" in --config.`,
    );
  }
  return e;
}

export function requireState(config: MigratorConfig): EndpointConfig {
  const e = stateEndpoint(config);
  if (!e) throw new UsageError('Missing --state-uri (or --target-uri, its default).');
  return e;
}
