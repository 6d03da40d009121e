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

export const MIN_ADMIN_TOKEN_LENGTH = 16;
/** An HMAC key shorter than this is guessable in practice. */
export const MIN_PAGE_TOKEN_SECRET_LENGTH = 32;

const envSchema = z.object({
  DATABASE_URL: databaseUrl,
  PORT: intIn(0, 65535, 50051),
  HOST: z.string().trim().optional().transform((v) => (v ? v : undefined)),
  ADMIN_TOKEN: z
    .string()
    .optional()
    .transform((v) => (v ? v : undefined)),
  MIGRATE_ON_START: bool(true),
  TENANCY_MODE: z.enum(['row', 'schema'], { message: 'must be row or schema' }).optional().transform((v) => v ?? 'row'),
  DB_POOL_MAX: intIn(1, 1000, 10),
  DB_POOL_IDLE_TIMEOUT_MS: intIn(0, 3_600_000, 10_000),
  DB_CONNECTION_TIMEOUT_MS: intIn(1, 600_000, 5_000),
  DB_POOL_MAX_LIFETIME_SECONDS: intIn(0, 86_400, 1_800),
  DB_STATEMENT_TIMEOUT_MS: intIn(0, 3_600_000, 30_000),
  DB_PREPARED_STATEMENTS: bool(false),
  DB_POOL_TENANT_MAX: intIn(1, 1000, 0),
  SHUTDOWN_GRACE_MS: intIn(0, 600_000, 10_000),
  IDEMPOTENCY_TTL_SECONDS: intIn(0, 31_536_000, 86_400),
  PAGE_TOKEN_SECRET: z
    .string()
    .min(MIN_PAGE_TOKEN_SECRET_LENGTH, `must be at least ${MIN_PAGE_TOKEN_SECRET_LENGTH} characters`)
    .optional(),
  LOG_LEVEL: z
    .enum(['debug', 'info', 'warn', 'error', 'silent'], { message: 'must be debug, info, warn, error or silent' })
    .optional()
    .transform((v) => v ?? 'info'),
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
    /** Named prepared statements (off for PgBouncer < 1.21 in transaction mode). */
    readonly prepareStatements: boolean;
    /** Most connections one tenant's transactions may hold at once; its further calls queue. */
    readonly tenantMax: number;
  };
  readonly shutdownGraceMs: number;
  /** How long a create's request_id is remembered; 0 keeps records forever. */
  readonly idempotencyTtlSeconds: number;
  /** HMAC key of page tokens; undefined: a random key per process (replicas must share one). */
  readonly pageTokenSecret: string | undefined;
  readonly logLevel: 'debug' | 'info' | 'warn' | 'error' | 'silent';
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
      // statements (STACK.md), so the embedded database gets exactly one pooled connection.
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
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    idempotencyTtlSeconds: e.IDEMPOTENCY_TTL_SECONDS,
    pageTokenSecret: e.PAGE_TOKEN_SECRET,
    logLevel: e.LOG_LEVEL,
  };
  return Object.freeze({ ...config, pool: Object.freeze(config.pool), database: Object.freeze(config.database) });
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
