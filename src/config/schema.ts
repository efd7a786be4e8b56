import { z } from 'zod';
import { parseDuration } from '../util/duration.js';

/** Validation of the resolved configuration; every message names the option it is about. */

const mongoUri = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .refine((s) => /^mongodb(\+srv)?:\/\/[^/?#]+/.test(s), {
    message: 'expected a connection string like mongodb://user:pass@host:27017/?replicaSet=rs0 or mongodb+srv://…',
  });

const endpointSchema = z.object({
  uri: mongoUri,
  tls: z.boolean().optional(),
  tlsCAFile: z.string().min(1).optional(),
  tlsAllowInvalidHostnames: z.boolean().optional(),
  retryWrites: z.boolean().optional(),
});
export type EndpointConfig = z.infer<typeof endpointSchema>;

/** Namespace patterns: `db`, `db.*`, `db.coll`, `*.coll`; no spaces, `$` or empty parts. */
export const NAMESPACE_PATTERN = /^(\*|[^.\s$/\\"*]+)(\.(\*|[^\s$"]+))?$/;
const nsPattern = z.string().regex(NAMESPACE_PATTERN, 'expected a namespace pattern like bar.*, bar.products or *.logs');
const dbName = /^[^.\s$/\\"*]+$/;
const mapEntry = z
  .string()
  .transform((s, ctx) => {
    const parts = s.split(':');
    if (parts.length !== 2 || !dbName.test(parts[0]!) || !dbName.test(parts[1]!)) {
      ctx.addIssue({ code: 'custom', message: `expected SRC_DB:DST_DB, e.g. bar:bar_new (got "${s}")` });
      return z.NEVER;
    }
    return { from: parts[0]!, to: parts[1]! };
  });

export const configSchema = z
  .object({
    source: endpointSchema.optional(),
    target: endpointSchema.optional(),
    state: endpointSchema.optional(),
    stateDb: z.string().regex(dbName, 'expected a database name without dots, spaces or $'),
    migrationId: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/, 'expected 1-100 letters, digits, _ . -'),
    kinesis: z.object({
      stream: z.string().min(1).max(2048).optional(),
      endpoint: z.url({ message: 'expected a URL like http://127.0.0.1:4567' }).optional(),
      region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'expected an AWS region like us-east-1'),
      http: z.enum(['auto', 'http1', 'http2']),
    }),
    namespaces: z.object({
      include: z.array(nsPattern),
      exclude: z.array(nsPattern),
      map: z.array(mapEntry).refine((m) => new Set(m.map((e) => e.from)).size === m.length, {
        message: 'a source database is mapped twice',
      }),
    }),
    dataDir: z.string().min(1),
    connectTimeoutMs: z.string().transform((s, ctx) => {
      const ms = parseDuration(s);
      if (ms === undefined || ms <= 0) {
        ctx.addIssue({ code: 'custom', message: 'expected a duration like 10s or 1m' });
        return z.NEVER;
      }
      return ms;
    }),
    logFormat: z.enum(['text', 'json']),
    verbose: z.boolean(),
  })
  .strict();

export type MigratorConfig = z.output<typeof configSchema>;

/** Maps a schema path to the flag a user typed, for error messages. */
export const FIELD_FLAGS: Record<string, string> = {
  'source.uri': 'source-uri',
  'source.tlsCAFile': 'source-tls-ca-file',
  'target.uri': 'target-uri',
  'target.tlsCAFile': 'target-tls-ca-file',
  'state.uri': 'state-uri',
  'state.tlsCAFile': 'state-tls-ca-file',
  stateDb: 'state-db',
  migrationId: 'migration-id',
  'kinesis.stream': 'kinesis-stream',
  'kinesis.endpoint': 'kinesis-endpoint',
  'kinesis.region': 'region',
  'kinesis.http': 'kinesis-http',
  'namespaces.include': 'include',
  'namespaces.exclude': 'exclude',
  'namespaces.map': 'map',
  dataDir: 'data-dir',
  connectTimeoutMs: 'connect-timeout',
  logFormat: 'log-format',
};
