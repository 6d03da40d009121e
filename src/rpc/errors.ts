/**
 * The one place that knows both the service's errors and gRPC codes. Clients get messages
 * written by the service, never SQL text or a stack; anything unexpected is INTERNAL with a
 * request id that is also in the log.
 */
import { Code, ConnectError } from '@connectrpc/connect';
import { DbError, type DbErrorKind, TransactionCancelledError } from '../db/index.js';
import { AppError, type AppErrorCode } from '../errors.js';
import type { Logger } from '../logger.js';

const APP_CODES: Readonly<Record<AppErrorCode, Code>> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  aborted: Code.Aborted,
  unauthenticated: Code.Unauthenticated,
  permission_denied: Code.PermissionDenied,
  resource_exhausted: Code.ResourceExhausted,
  deadline_exceeded: Code.DeadlineExceeded,
  cancelled: Code.Canceled,
  unavailable: Code.Unavailable,
  internal: Code.Internal,
};

const DB_CODES: Readonly<Record<DbErrorKind, [Code, string]>> = {
  unique: [Code.AlreadyExists, 'already exists'],
  foreign_key: [Code.FailedPrecondition, 'a referenced resource does not exist'],
  check: [Code.InvalidArgument, 'a value is out of range'],
  not_null: [Code.InvalidArgument, 'a required value is missing'],
  invalid_input: [Code.InvalidArgument, 'a value is malformed'],
  serialization: [Code.Aborted, 'conflict with a concurrent write; retry'],
  deadlock: [Code.Aborted, 'conflict with a concurrent write; retry'],
  timeout: [Code.DeadlineExceeded, 'the deadline was exceeded'],
  connection: [Code.Unavailable, 'the database is unavailable'],
  // Transient and the server's condition, not the caller's: UNAVAILABLE is what clients retry.
  pool_busy: [Code.Unavailable, 'the service is busy: no database connection came free in time; retry later'],
  permission: [Code.PermissionDenied, 'not permitted'],
  refused: [Code.Unauthenticated, 'the credentials were refused'],
  other: [Code.Internal, 'internal error'],
};

export function toConnectError(err: unknown, logger: Logger, requestId: string): ConnectError {
  if (err instanceof ConnectError) return err;
  // A transaction stopped by the call's signal reports why the signal fired: UNAVAILABLE when
  // the server is shutting down, DEADLINE_EXCEEDED when the deadline passed.
  if (err instanceof TransactionCancelledError && err.cause instanceof ConnectError) return err.cause;
  if (err instanceof AppError) return new ConnectError(err.message, APP_CODES[err.code]);
  if (err instanceof DbError) {
    const [code, message] = DB_CODES[err.kind];
    if (code === Code.Internal || code === Code.Unavailable || code === Code.PermissionDenied) {
      logger.error('database error', { requestId, kind: err.kind, sqlstate: err.code, err: err.cause });
    }
    return new ConnectError(code === Code.Internal ? `internal error (request ${requestId})` : message, code);
  }
  logger.error('unexpected error', { requestId, err });
  return new ConnectError(`internal error (request ${requestId})`, Code.Internal);
}
