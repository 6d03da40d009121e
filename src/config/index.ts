/**
 * The service's configuration: read once from the environment, validated with one zod schema,
 * frozen. Nothing else in the service reads `process.env`.
 */
import { z } from 'zod';
import { type DatabaseTarget, DatabaseUrlError, parseDatabaseUrl } from './database-url.js';

export { type DatabaseTarget, redactDatabaseUrl } from './database-url.js';

const intIn = (min: number, max: number, fallback: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, `must be a whole number from ${min} to ${max}`)
    .transform(Number)
    .pipe(z.number().int().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`))
    .optional()
    .transform((v) => v ?? fallback);

const bool = (fallback: boolean) =>
  z
    .string()
    .trim()
    .toLowerCase()
    .refine((v) => ['true', 'false', '1', '0', 'yes', 'no', ''].includes(v), 'must be true or false')
    .transform((v) => (v === '' ? fallback : ['true', '1', 'yes'].includes(v)))
    .optional()
    .transform((v) => v ?? fallback);

const databaseUrl = z
  .string()
  .optional()
  .transform((value, ctx): DatabaseTarget => {
    try {
      return parseDatabaseUrl(value);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: err instanceof DatabaseUrlError ? err.message : 'invalid' });
      return z.NEVER;
    }
  });

/**
 * DATABASE_LISTEN_URL: where the one LISTEN connection of the change feed goes. Unset: the
 * DATABASE_URL server. `off`: no LISTEN at all (streams and waiting claims poll instead), for a
 * service that only reaches the database through a transaction-mode pooler.
 */
const listenUrl = z
  .string()
  .optional()
  .transform(
    (value, ctx): { readonly kind: 'postgres'; readonly url: string } | { readonly kind: 'off' } | undefined => {
      if (value === undefined) return undefined;
      if (value.trim().toLowerCase() === 'off') return { kind: 'off' };
      try {
        const target = parseDatabaseUrl(value);
        if (target.kind === 'postgres') return target;
        ctx.addIssue({ code: 'custom', message: 'must be a postgres:// URL of the same database, or off' });
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: err instanceof DatabaseUrlError ? err.message : 'invalid' });
      }
      return z.NEVER;
    },
  );

export const MIN_ADMIN_TOKEN_LENGTH = 16;
/** An HMAC key shorter than this is guessable in practice. */
export const MIN_PAGE_TOKEN_SECRET_LENGTH = 32;

const envSchema = z
  .object({
    DATABASE_URL: databaseUrl,
    DATABASE_LISTEN_URL: listenUrl,
    WATCH_POLL_INTERVAL_MS: intIn(50, 600_000, 1_000),
    PORT: intIn(0, 65535, 50051),
    HOST: z
      .string()
      .trim()
      .optional()
      .transform((v) => (v ? v : undefined)),
    ADMIN_TOKEN: z
      .string()
      .optional()
      .transform((v) => (v ? v : undefined)),
    MIGRATE_ON_START: bool(true),
    TENANCY_MODE: z
      .enum(['row', 'schema'], { message: 'must be row or schema' })
      .optional()
      .transform((v) => v ?? 'row'),
    DB_POOL_MAX: intIn(1, 1000, 10),
    DB_POOL_IDLE_TIMEOUT_MS: intIn(0, 3_600_000, 10_000),
    DB_CONNECTION_TIMEOUT_MS: intIn(1, 600_000, 5_000),
    DB_POOL_MAX_LIFETIME_SECONDS: intIn(0, 86_400, 1_800),
    DB_STATEMENT_TIMEOUT_MS: intIn(0, 3_600_000, 30_000),
    DB_PREPARED_STATEMENTS: bool(true),
    DB_POOL_TENANT_MAX: intIn(1, 1000, 0),
    SHUTDOWN_GRACE_MS: intIn(0, 600_000, 10_000),
    IDEMPOTENCY_TTL_SECONDS: intIn(0, 31_536_000, 86_400),
    // The edge: connections, HTTP limits and TLS (src/rpc/server.ts).
    MAX_CONNECTIONS: intIn(1, 1_000_000, 4_096),
    FIRST_REQUEST_TIMEOUT_MS: intIn(100, 600_000, 10_000),
    HTTP2_IDLE_TIMEOUT_MS: intIn(0, 86_400_000, 300_000),
    HTTP1_KEEP_ALIVE_TIMEOUT_MS: intIn(100, 600_000, 5_000),
    HTTP1_HEADERS_TIMEOUT_MS: intIn(100, 600_000, 10_000),
    HTTP1_REQUEST_TIMEOUT_MS: intIn(100, 3_600_000, 30_000),
    MAX_HEADER_BYTES: intIn(1_024, 1_048_576, 65_536),
    TLS_CERT_FILE: z.string().trim().optional(),
    TLS_KEY_FILE: z.string().trim().optional(),
    PAGE_TOKEN_SECRET: z
      .string()
      .min(MIN_PAGE_TOKEN_SECRET_LENGTH, `must be at least ${MIN_PAGE_TOKEN_SECRET_LENGTH} characters`)
      .optional(),
    LOG_LEVEL: z
      .enum(['debug', 'info', 'warn', 'error', 'silent'], { message: 'must be debug, info, warn, error or silent' })
      .optional()
      .transform((v) => v ?? 'info'),
  })
  .superRefine((e, ctx) => {
    if ((e.TLS_CERT_FILE === undefined) !== (e.TLS_KEY_FILE === undefined)) {
      const missing = e.TLS_CERT_FILE === undefined ? 'TLS_CERT_FILE' : 'TLS_KEY_FILE';
      ctx.addIssue({ code: 'custom', path: [missing], message: 'TLS needs both TLS_CERT_FILE and TLS_KEY_FILE' });
    }
    // Node refuses an http server whose headers timeout is longer than its request timeout.
    if (e.HTTP1_HEADERS_TIMEOUT_MS > e.HTTP1_REQUEST_TIMEOUT_MS) {
      ctx.addIssue({
        code: 'custom',
        path: ['HTTP1_HEADERS_TIMEOUT_MS'],
        message: 'must not be longer than HTTP1_REQUEST_TIMEOUT_MS',
      });
    }
  });

export interface Config {
  readonly database: DatabaseTarget;
  readonly port: number;
  readonly host: string | undefined;
  readonly adminToken: string | undefined;
  /** The admin token is shorter than 16 characters: accepted, but the start logs a warning. */
  readonly adminTokenWeak: boolean;
  readonly migrateOnStart: boolean;
  readonly tenancyMode: 'row' | 'schema';
  readonly pool: {
    readonly max: number;
    readonly idleTimeoutMs: number;
    readonly connectionTimeoutMs: number;
    readonly maxLifetimeSeconds: number;
    readonly statementTimeoutMs: number;
    /** Named prepared statements (on; they turn themselves off behind PgBouncer < 1.21 in transaction mode). */
    readonly prepareStatements: boolean;
    /** Most connections one tenant's transactions may hold at once; its further calls queue. */
    readonly tenantMax: number;
  };
  /**
   * The change feed's wake-ups (WatchTasks, ClaimTask's wait_seconds). `listen`: a LISTEN
   * connection to this URL (server mode); `embedded`: notifications come back on the pool's own
   * connection (PGlite); `poll`: none, only the timer.
   */
  readonly changeFeed:
    | { readonly mode: 'listen'; readonly url: string; readonly pollIntervalMs: number }
    | { readonly mode: 'embedded' | 'poll'; readonly pollIntervalMs: number };
  readonly shutdownGraceMs: number;
  /** Limits at the edge: what a connection may cost before it sends (or finishes) a call. */
  readonly server: ServerLimits;
  /** Serve every protocol over TLS on the one port; null: cleartext. */
  readonly tls: { readonly certFile: string; readonly keyFile: string } | null;
  /** How long a create's request_id is remembered; 0 keeps records forever. */
  readonly idempotencyTtlSeconds: number;
  /** HMAC key of page tokens; undefined: a random key per process (replicas must share one). */
  readonly pageTokenSecret: string | undefined;
  readonly logLevel: 'debug' | 'info' | 'warn' | 'error' | 'silent';
}

export interface ServerLimits {
  /** Connections served at once; more are refused (HTTP 503 / HTTP/2 GOAWAY) and logged. */
  readonly maxConnections: number;
  /** A new connection must finish TLS, show its protocol and (HTTP/2) open a stream within this. */
  readonly firstRequestTimeoutMs: number;
  /** An HTTP/2 connection with no call open for this long is closed (GOAWAY); 0: never. */
  readonly http2IdleTimeoutMs: number;
  readonly http1KeepAliveTimeoutMs: number;
  /** An HTTP/1.1 request's headers must arrive within this. */
  readonly http1HeadersTimeoutMs: number;
  /** An HTTP/1.1 request (headers and body) must arrive within this. */
  readonly http1RequestTimeoutMs: number;
  /** A call with a larger header list is refused alone (RESOURCE_EXHAUSTED / HTTP 431). */
  readonly maxHeaderBytes: number;
}

/** Every bad variable, named; the values themselves are never repeated (they may be secrets). */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/**
 * Validates an environment into a frozen Config.
 * @throws ConfigError listing every bad variable.
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>>): Config {
  // An empty variable means the same as an unset one (as `FOO= npm start` intends).
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v.trim() !== ''));
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.') || 'environment'}: ${issue.message}`);
    throw new ConfigError([...new Set(problems)]);
  }
  const e = parsed.data;
  const poolMax = e.DATABASE_URL.kind === 'pglite' ? 1 : e.DB_POOL_MAX;
  const config: Config = {
    database: e.DATABASE_URL,
    port: e.PORT,
    host: e.HOST,
    adminToken: e.ADMIN_TOKEN,
    adminTokenWeak: e.ADMIN_TOKEN !== undefined && e.ADMIN_TOKEN.length < MIN_ADMIN_TOKEN_LENGTH,
    migrateOnStart: e.MIGRATE_ON_START,
    tenancyMode: e.TENANCY_MODE,
    pool: {
      // pglite-socket multiplexes every connection onto one session and interleaves their
      // statements (docs/stack-notes.md), so the embedded database gets exactly one pooled connection.
      max: poolMax,
      idleTimeoutMs: e.DB_POOL_IDLE_TIMEOUT_MS,
      connectionTimeoutMs: e.DB_CONNECTION_TIMEOUT_MS,
      maxLifetimeSeconds: e.DB_POOL_MAX_LIFETIME_SECONDS,
      statementTimeoutMs: e.DB_STATEMENT_TIMEOUT_MS,
      // pglite-socket runs every connection on one session, where a named statement outlives the
      // connection that prepared it: the next connection's Parse of the same name fails (42P05).
      prepareStatements: e.DATABASE_URL.kind === 'pglite' ? false : e.DB_PREPARED_STATEMENTS,
      // Half the pool by default: one tenant's burst (or its calls stuck on a lock) leaves the
      // other half to everyone else. More than the pool means no limit.
      tenantMax: Math.min(poolMax, e.DB_POOL_TENANT_MAX || Math.max(1, Math.floor(poolMax / 2))),
    },
    changeFeed: changeFeedOf(e.DATABASE_URL, e.DATABASE_LISTEN_URL, e.WATCH_POLL_INTERVAL_MS),
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    server: {
      maxConnections: e.MAX_CONNECTIONS,
      firstRequestTimeoutMs: e.FIRST_REQUEST_TIMEOUT_MS,
      http2IdleTimeoutMs: e.HTTP2_IDLE_TIMEOUT_MS,
      http1KeepAliveTimeoutMs: e.HTTP1_KEEP_ALIVE_TIMEOUT_MS,
      http1HeadersTimeoutMs: e.HTTP1_HEADERS_TIMEOUT_MS,
      http1RequestTimeoutMs: e.HTTP1_REQUEST_TIMEOUT_MS,
      maxHeaderBytes: e.MAX_HEADER_BYTES,
    },
    tls:
      e.TLS_CERT_FILE !== undefined && e.TLS_KEY_FILE !== undefined
        ? { certFile: e.TLS_CERT_FILE, keyFile: e.TLS_KEY_FILE }
        : null,
    idempotencyTtlSeconds: e.IDEMPOTENCY_TTL_SECONDS,
    pageTokenSecret: e.PAGE_TOKEN_SECRET,
    logLevel: e.LOG_LEVEL,
  };
  return Object.freeze({
    ...config,
    pool: Object.freeze(config.pool),
    database: Object.freeze(config.database),
    changeFeed: Object.freeze(config.changeFeed),
    server: Object.freeze(config.server),
    tls: config.tls && Object.freeze(config.tls),
  });
}

function changeFeedOf(
  database: DatabaseTarget,
  listen: { readonly kind: 'postgres'; readonly url: string } | { readonly kind: 'off' } | undefined,
  pollIntervalMs: number,
): Config['changeFeed'] {
  // pglite-socket serves one session to every connection and NOTIFY comes back to the sender
  // only (docs/stack-notes.md), so a LISTEN connection of its own would hear nothing there.
  if (database.kind === 'pglite') return { mode: 'embedded', pollIntervalMs };
  if (listen?.kind === 'off') return { mode: 'poll', pollIntervalMs };
  return { mode: 'listen', url: listen?.url ?? database.url, pollIntervalMs };
}

/**
 * The configuration of this process, from its environment (read here and nowhere else). For
 * the entry points: a bad configuration prints the one message naming every bad variable and
 * exits with code 2, no stack trace.
 */
export function loadConfigOrExit(): Config {
  try {
    return loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`task-api: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}
