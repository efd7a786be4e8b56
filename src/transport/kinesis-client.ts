/**
 * Construction of the Kinesis client used by the migrator (producer and consumer side).
 *
 * HTTP handler choice
 * -------------------
 * `@aws-sdk/client-kinesis` v3 (checked on 3.1143.0: dist-cjs/index.js / dist-es/runtimeConfig.js)
 * defaults on Node to `NodeHttp2Handler` (HTTP/2) created with `disableConcurrentStreams: true`,
 * i.e. one isolated HTTP/2 session per request. That handler calls `session.close()` (GOAWAY) as
 * soon as the response headers arrive, while the body is still in flight. Real AWS copes with it;
 * kinesis-local (kinesis-mock, h2c on its plain port) does not: reading the body then fails with
 * `ERR_HTTP2_ERROR: Protocol error` even though the server answered 200 and, for PutRecords, has
 * already stored the records. Small responses usually survive, anything a few KiB large usually
 * does not (e.g. PutRecords of 100 records, GetRecords). Such a failure is raised while
 * deserializing, so the SDK does not retry it.
 *
 * Therefore `httpHandler: 'auto'` (the default) picks HTTP/1.1 with a keep-alive agent
 * (`NodeHttpHandler`) for custom endpoints that are plain `http://` or loopback (local mocks),
 * and keeps the SDK default (HTTP/2) for real AWS.
 *
 * Retries: the SDK's `standard` retry mode with `maxAttempts` (default 3, the SDK default).
 */
import { isIP } from 'node:net';
import { KinesisClient, type KinesisClientConfig } from '@aws-sdk/client-kinesis';
import { NodeHttp2Handler, NodeHttpHandler } from '@smithy/node-http-handler';

export type HttpHandlerOption = 'http1' | 'http2' | 'auto';
/** The handler actually used: `http1` = NodeHttpHandler + keep-alive agent, `http2` = SDK default NodeHttp2Handler. */
export type HttpHandlerKind = 'http1' | 'http2';
export type CredentialSource = 'explicit' | 'loopback-static-fake' | 'default-chain';

export interface KinesisClientOptions {
  region: string;
  /** Custom endpoint, e.g. `http://127.0.0.1:4568` for kinesis-local. Omit for real AWS. */
  endpoint?: string;
  /** Default `'auto'`, see {@link resolveHttpHandlerKind}. */
  httpHandler?: HttpHandlerOption;
  /** Max sockets per origin of the HTTP/1.1 keep-alive agent (default 50, the SDK default). Ignored for HTTP/2. */
  maxSockets?: number;
  /**
   * Per-request timeout in ms. HTTP/1.1: whole request/response, raised as a TimeoutError
   * (`throwOnRequestTimeout`). HTTP/2: stream inactivity timeout. Default: none (SDK default).
   */
  requestTimeoutMs?: number;
  /** TCP connect timeout in ms (HTTP/1.1 only). Default: none (SDK default). */
  connectionTimeoutMs?: number;
  /** Total attempts including the first, SDK `standard` retry mode. Default 3. */
  maxAttempts?: number;
  /** Explicit credentials or provider. Omit to use the default chain (or the loopback fakes, see below). */
  credentials?: KinesisClientConfig['credentials'];
}

/** Settings of a client as created, without any secret. Safe to log. */
export interface KinesisClientDescription {
  region: string;
  /** Endpoint with user-info, query and fragment removed; `undefined` = AWS default endpoint. */
  endpoint: string | undefined;
  endpointIsLoopback: boolean;
  httpHandlerRequested: HttpHandlerOption;
  httpHandler: HttpHandlerKind;
  /** Only meaningful for http1. */
  maxSockets: number | undefined;
  requestTimeoutMs: number | undefined;
  connectionTimeoutMs: number | undefined;
  retryMode: 'standard';
  maxAttempts: number;
  credentialSource: CredentialSource;
}

export const DEFAULT_MAX_ATTEMPTS = 3;
export const DEFAULT_MAX_SOCKETS = 50;

/**
 * Static fake credentials for local mocks. kinesis-mock only requires a SigV4 `Authorization`
 * header; it does not verify the signature. Its README: an access key id made of 12 digits selects
 * that AWS account, anything else maps to the default account 000000000000 — so this id must not
 * be 12 digits.
 */
const LOOPBACK_FAKE_CREDENTIALS = Object.freeze({
  accessKeyId: 'AKIDLOCALFAKE',
  secretAccessKey: 'local-fake-secret',
});

function parseEndpoint(endpoint: string): URL {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new Error(`Invalid Kinesis endpoint ${JSON.stringify(endpoint)}: not a URL (expected e.g. http://127.0.0.1:4568)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`Invalid Kinesis endpoint ${JSON.stringify(redactEndpoint(url))}: protocol must be http: or https:`);
  }
  return url;
}

function redactEndpoint(url: URL): string {
  const copy = new URL(url.href);
  copy.username = '';
  copy.password = '';
  copy.search = '';
  copy.hash = '';
  return copy.href.replace(/\/$/, '');
}

/** `localhost`, `*.localhost`, 127.0.0.0/8, `::1`, IPv4-mapped 127.x. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/^\[|\]$/g, '').replace(/\.$/, '');
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  const kind = isIP(host);
  if (kind === 4) return host.startsWith('127.');
  if (kind === 6) {
    if (host === '::1' || host === '0:0:0:0:0:0:0:1') return true;
    const mapped = /^(?:0:0:0:0:0:|::)ffff:(.+)$/.exec(host);
    if (mapped?.[1] !== undefined) {
      const inner = mapped[1];
      if (isIP(inner) === 4) return inner.startsWith('127.');
      // hex form, e.g. ::ffff:7f00:1
      return /^7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(inner);
    }
  }
  return false;
}

export function isLoopbackEndpoint(endpoint: string | undefined): boolean {
  if (endpoint === undefined) return false;
  return isLoopbackHost(parseEndpoint(endpoint).hostname);
}

/**
 * Which HTTP handler a client built from `opts` uses.
 * - `'http1'` / `'http2'`: as requested.
 * - `'auto'` (default): `'http1'` when a custom endpoint is given and it is `http://` or a loopback
 *   host (kinesis-local and similar mocks, see the module comment); otherwise `'http2'`, the SDK
 *   default for client-kinesis on Node (real AWS, or a custom https endpoint such as a VPC endpoint).
 */
export function resolveHttpHandlerKind(opts: Pick<KinesisClientOptions, 'endpoint' | 'httpHandler'>): HttpHandlerKind {
  const requested = opts.httpHandler ?? 'auto';
  switch (requested) {
    case 'http1':
    case 'http2':
      if (opts.endpoint !== undefined) parseEndpoint(opts.endpoint); // validate anyway
      return requested;
    case 'auto': {
      if (opts.endpoint === undefined) return 'http2';
      const url = parseEndpoint(opts.endpoint);
      return url.protocol === 'http:' || isLoopbackHost(url.hostname) ? 'http1' : 'http2';
    }
    default:
      throw new Error(`Invalid httpHandler ${JSON.stringify(requested)}: expected 'http1', 'http2' or 'auto'`);
  }
}

/**
 * Where credentials come from.
 * - `credentials` given → used as is (`explicit`).
 * - Otherwise, a custom endpoint on a loopback host → static fake credentials
 *   (`loopback-static-fake`). Choice: a loopback endpoint is a local mock (kinesis-local) that
 *   needs *a* SigV4 signature but no real identity, and falling through to the default chain there
 *   would make local runs depend on (or leak) the developer's AWS profile, and on machines without
 *   one, wait for the EC2 metadata lookup. It is limited to loopback so that a mis-typed remote
 *   endpoint can never silently run with fake credentials. A mock on a non-loopback host (e.g. a
 *   docker-compose service name) must get credentials configured explicitly or through the
 *   environment, like real AWS.
 * - Otherwise (real AWS, or remote custom endpoint) → the SDK default credential provider chain.
 */
export function resolveCredentialSource(opts: Pick<KinesisClientOptions, 'endpoint' | 'credentials'>): CredentialSource {
  if (opts.credentials !== undefined) return 'explicit';
  if (isLoopbackEndpoint(opts.endpoint)) return 'loopback-static-fake';
  return 'default-chain';
}

function validatePositiveInt(name: string, value: number | undefined): void {
  if (value === undefined) return;
  if (!Number.isInteger(value) || value < 1) {
    throw new Error(`Invalid Kinesis client option ${name}=${String(value)}: expected a positive integer`);
  }
}

/** Describe the settings a client built from `opts` gets, without secrets (for logs). */
export function describeKinesisClientOptions(opts: KinesisClientOptions): KinesisClientDescription {
  validatePositiveInt('maxSockets', opts.maxSockets);
  validatePositiveInt('requestTimeoutMs', opts.requestTimeoutMs);
  validatePositiveInt('connectionTimeoutMs', opts.connectionTimeoutMs);
  validatePositiveInt('maxAttempts', opts.maxAttempts);
  if (typeof opts.region !== 'string' || opts.region.trim() === '') {
    throw new Error('Invalid Kinesis client option region: a non-empty region is required');
  }
  const httpHandler = resolveHttpHandlerKind(opts);
  const url = opts.endpoint === undefined ? undefined : parseEndpoint(opts.endpoint);
  return {
    region: opts.region,
    endpoint: url === undefined ? undefined : redactEndpoint(url),
    endpointIsLoopback: url === undefined ? false : isLoopbackHost(url.hostname),
    httpHandlerRequested: opts.httpHandler ?? 'auto',
    httpHandler,
    maxSockets: httpHandler === 'http1' ? (opts.maxSockets ?? DEFAULT_MAX_SOCKETS) : undefined,
    requestTimeoutMs: opts.requestTimeoutMs,
    connectionTimeoutMs: httpHandler === 'http1' ? opts.connectionTimeoutMs : undefined,
    retryMode: 'standard',
    maxAttempts: opts.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
    credentialSource: resolveCredentialSource(opts),
  };
}

const descriptions = new WeakMap<KinesisClient, KinesisClientDescription>();

/** Settings of a client made by {@link createKinesisClient}, without secrets (for logs). */
export function describeKinesisClient(client: KinesisClient): KinesisClientDescription {
  const d = descriptions.get(client);
  if (d === undefined) throw new Error('describeKinesisClient: client was not created by createKinesisClient');
  return { ...d };
}

export function createKinesisClient(opts: KinesisClientOptions): KinesisClient {
  const d = describeKinesisClientOptions(opts);

  let requestHandler: KinesisClientConfig['requestHandler'];
  if (d.httpHandler === 'http1') {
    const agentOptions = { keepAlive: true, maxSockets: d.maxSockets };
    requestHandler = new NodeHttpHandler({
      httpAgent: agentOptions,
      httpsAgent: agentOptions,
      ...(opts.requestTimeoutMs !== undefined ? { requestTimeout: opts.requestTimeoutMs, throwOnRequestTimeout: true } : {}),
      ...(opts.connectionTimeoutMs !== undefined ? { connectionTimeout: opts.connectionTimeoutMs } : {}),
    });
  } else if (opts.requestTimeoutMs !== undefined) {
    // Same as the SDK default handler (isolated session per request) plus the timeout.
    requestHandler = new NodeHttp2Handler({ disableConcurrentStreams: true, requestTimeout: opts.requestTimeoutMs });
  } // else: leave undefined → SDK default NodeHttp2Handler.

  const credentials =
    d.credentialSource === 'explicit'
      ? opts.credentials
      : d.credentialSource === 'loopback-static-fake'
        ? { ...LOOPBACK_FAKE_CREDENTIALS }
        : undefined; // SDK default credential provider chain

  const client = new KinesisClient({
    region: opts.region,
    ...(opts.endpoint !== undefined ? { endpoint: opts.endpoint } : {}),
    ...(requestHandler !== undefined ? { requestHandler } : {}),
    ...(credentials !== undefined ? { credentials } : {}),
    retryMode: 'standard',
    maxAttempts: d.maxAttempts,
  });
  descriptions.set(client, d);
  return client;
}
