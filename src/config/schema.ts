import { z } from 'zod';
import { parseDuration } from '../util/duration.js';
import { NamespaceRules, parseNamespaceMap, parseNamespacePattern } from '../model/namespace-filter.js';

/** Validation of the resolved configuration; every message names the option it is about. */

const mongoUri = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .refine((s) => /^mongodb(\+srv)?:\/\/[^/?#]+/.test(s), {
    message: 'expected a connection string like mongodb://host:27017/?replicaSet=rs0 (credentials as user:password@host) or mongodb+srv://…',
  });

const endpointSchema = z.object({
  uri: mongoUri,
  tls: z.boolean().optional(),
  tlsCAFile: z.string().min(1).optional(),
  tlsAllowInvalidHostnames: z.boolean().optional(),
  retryWrites: z.boolean().optional(),
});
export type EndpointConfig = z.infer<typeof endpointSchema>;

/** Namespace patterns and maps are validated by the same parser the pipeline uses. */
function parsesWith(parse: (text: string) => unknown) {
  return (text: string, ctx: z.RefinementCtx) => {
    try {
      parse(text);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `"${text}": ${err instanceof Error ? err.message : String(err)}` });
    }
  };
}
const nsPattern = z.string().superRefine(parsesWith(parseNamespacePattern));
const mapEntry = z.string().superRefine(parsesWith((t) => parseNamespaceMap(t)));
const dbName = /^[^.\s$/\\"*]+$/;

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
      map: z.array(mapEntry).superRefine((maps, ctx) => {
        try {
          new NamespaceRules({ map: maps });
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: err instanceof Error ? err.message : String(err) });
        }
      }),
    }),
    /** --time-series (target-compat.ts): time-series collections refused by preflight, or copied once. */
    timeSeries: z.enum(['refuse', 'load-only']),
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
  timeSeries: 'time-series',
  dataDir: 'data-dir',
  connectTimeoutMs: 'connect-timeout',
  logFormat: 'log-format',
};
