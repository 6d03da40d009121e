/**
 * Database errors, classified once. Callers above `src/db` see a DbError with a `kind` and never
 * the driver's error or SQL text; the RPC layer maps kinds to gRPC codes (src/rpc/errors.ts).
 */
import { countDbError } from '../metrics.js';

export type DbErrorKind =
  | 'unique'
  | 'foreign_key'
  | 'check'
  | 'not_null'
  | 'serialization'
  | 'deadlock'
  | 'timeout'
  | 'connection'
  | 'pool_busy'
  | 'invalid_input'
  | 'permission'
  | 'refused'
  | 'other';

export class DbError extends Error {
  override readonly name = 'DbError';
  constructor(
    readonly kind: DbErrorKind,
    /** SQLSTATE, or the socket error code for connection failures. */
    readonly code: string | undefined,
    /** The constraint a unique/foreign key/check violation names. */
    readonly constraint: string | undefined,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** Serialization failures and deadlocks: the whole transaction may simply be run again. */
  get retryable(): boolean {
    return this.kind === 'serialization' || this.kind === 'deadlock';
  }
}

/** SQLSTATE → kind. Classes 08 (connection) and 22 (data) are matched by prefix below. */
const BY_SQLSTATE: Readonly<Record<string, DbErrorKind>> = {
  '23505': 'unique',
  '23503': 'foreign_key',
  '23514': 'check',
  '23502': 'not_null',
  '40001': 'serialization',
  '40P01': 'deadlock',
  '57014': 'timeout', // query_canceled: statement_timeout or a cancel request
  '55P03': 'timeout', // lock_not_available: lock_timeout
  '57P01': 'connection', // admin_shutdown, e.g. pg_terminate_backend
  '57P02': 'connection', // crash_shutdown
  '57P03': 'connection', // cannot_connect_now
  '53300': 'connection', // too_many_connections
  '42501': 'permission', // insufficient_privilege, including row-level security violations
  // invalid_authorization_specification, raised by the service's own API-key check
  // (api_key_check, migrations/tenant/1764400000000): its message is the service's, for the client.
  // (The same code from a failed login comes from connect(), which reports the database as
  // unavailable instead.)
  '28000': 'refused',
};

/** Socket-level and pool-level failures that carry no SQLSTATE. */
const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
]);
const CONNECTION_MESSAGES = [
  'Connection terminated',
  'Client has encountered a connection error',
  'Connection ended',
  'Client was closed',
  'Cannot use a pool after calling end',
  'Handler disconnected',
];

/**
 * pg-pool's message when no pooled connection came free within connectionTimeoutMillis: every
 * connection was in use. The database may be perfectly healthy; saying "unavailable" sent
 * people looking for an outage.
 */
const POOL_BUSY_MESSAGE = 'timeout exceeded when trying to connect';

function kindOf(err: { code?: unknown; message?: unknown }): DbErrorKind {
  const code = typeof err.code === 'string' ? err.code : undefined;
  if (code) {
    const known = BY_SQLSTATE[code];
    if (known) return known;
    if (code.startsWith('08')) return 'connection';
    if (code.startsWith('22')) return 'invalid_input';
    if (CONNECTION_CODES.has(code)) return 'connection';
  }
  const message = typeof err.message === 'string' ? err.message : '';
  if (message.includes(POOL_BUSY_MESSAGE)) return 'pool_busy';
  if (CONNECTION_MESSAGES.some((m) => message.includes(m))) return 'connection';
  return 'other';
}

const MESSAGES: Readonly<Record<DbErrorKind, string>> = {
  unique: 'a row with the same key already exists',
  foreign_key: 'a referenced row does not exist',
  check: 'a value is out of range',
  not_null: 'a required value is missing',
  serialization: 'the transaction conflicted with a concurrent one',
  deadlock: 'the transaction conflicted with a concurrent one',
  timeout: 'the database did not answer in time',
  connection: 'the database is unavailable',
  pool_busy: 'every database connection stayed busy',
  invalid_input: 'a value is malformed',
  permission: 'the database refused the operation',
  refused: 'the credentials were refused',
  other: 'unexpected database error',
};

/** True for errors raised by the driver or the server (as opposed to application errors). */
export function isDriverError(err: unknown): err is Error & { code?: string; constraint?: string } {
  if (!(err instanceof Error) || err instanceof DbError) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') return SQLSTATE.test(code) || CONNECTION_CODES.has(code);
  return err.message.includes(POOL_BUSY_MESSAGE) || CONNECTION_MESSAGES.some((m) => err.message.includes(m));
}

const SQLSTATE = /^[0-9A-Z]{5}$/;

/** Wraps a driver error in a DbError; anything else is returned as it is. */
export function classifyDbError(err: unknown): unknown {
  if (!isDriverError(err)) return err;
  const kind = kindOf(err);
  // A refused API key is the caller's error, counted with the calls, not the database's.
  if (kind !== 'refused') countDbError(kind);
  // A refusal's message is written by the service's own SQL (api_key_check), never SQL text.
  const message = kind === 'refused' && err.message ? err.message : MESSAGES[kind];
  return new DbError(kind, err.code, err.constraint, message, { cause: err });
}

export function isConnectionError(err: unknown): boolean {
  if (err instanceof DbError) return err.kind === 'connection';
  return isDriverError(err) && kindOf(err) === 'connection';
}
