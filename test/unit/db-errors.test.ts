import { Code, ConnectError } from '@connectrpc/connect';
import { describe, expect, it } from 'vitest';
import { classifyDbError, DbError, type DbErrorKind, isConnectionError } from '../../src/db/errors.js';
import {
  AppError,
  type AppErrorCode,
  aborted,
  failedPrecondition,
  invalidArgument,
  notFound,
} from '../../src/errors.js';
import type { Logger } from '../../src/logger.js';
import { toConnectError } from '../../src/rpc/errors.js';

/** An error shaped like the ones `pg` raises for a server error. */
function pgError(code: string, message: string, constraint?: string): Error {
  return Object.assign(new Error(message), { code, severity: 'ERROR', constraint });
}

/** A socket error as Node raises it. */
function socketError(code: string): Error {
  return Object.assign(new Error(`connect ${code} 10.0.0.5:5432`), { code, errno: -111, syscall: 'connect' });
}

function classified(err: unknown): DbError {
  const out = classifyDbError(err);
  expect(out).toBeInstanceOf(DbError);
  return out as DbError;
}

function recordingLogger() {
  const lines: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) =>
    void lines.push({ level, msg, fields });
  const logger: Logger = {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    call: (level, fields) => at(level)('call', fields),
  };
  return { logger, lines };
}

describe('classifyDbError', () => {
  it.each<[string, DbErrorKind, string]>([
    ['23505', 'unique', 'duplicate key value violates unique constraint "projects_tenant_id_name_key"'],
    ['23503', 'foreign_key', 'insert or update on table "tasks" violates foreign key constraint "tasks_project_fk"'],
    ['23514', 'check', 'new row for relation "tasks" violates check constraint "tasks_title_check"'],
    ['23502', 'not_null', 'null value in column "title" of relation "tasks" violates not-null constraint'],
    ['40001', 'serialization', 'could not serialize access due to concurrent update'],
    ['40P01', 'deadlock', 'deadlock detected'],
    ['57014', 'timeout', 'canceling statement due to statement timeout'],
    ['57P01', 'connection', 'terminating connection due to administrator command'],
    ['08006', 'connection', 'connection failure'],
    ['22P02', 'invalid_input', 'invalid input syntax for type bigint: "abc"'],
    ['42501', 'permission', 'new row violates row-level security policy for table "tasks"'],
  ])('SQLSTATE %s → %s', (code, kind, message) => {
    const original = pgError(code, message, 'some_constraint');
    const err = classified(original);
    expect(err.kind).toBe(kind);
    expect(err.code).toBe(code);
    expect(err.constraint).toBe('some_constraint');
    expect(err.cause).toBe(original);
    // The driver's text (table and constraint names, values) stays in the cause only.
    expect(err.message).not.toContain(message);
    expect(err.message).not.toMatch(/constraint|relation|"/);
  });

  it('keeps the constraint a unique violation names', () => {
    const err = classified(pgError('23505', 'duplicate key', 'workers_tenant_id_handle_key'));
    expect(err.constraint).toBe('workers_tenant_id_handle_key');
  });

  it('an unlisted SQLSTATE is other', () => {
    expect(classified(pgError('42601', 'syntax error at or near "selec"')).kind).toBe('other');
    expect(classified(pgError('XX000', 'internal error')).kind).toBe('other');
  });

  it('only serialization failures and deadlocks are retryable', () => {
    expect(classified(pgError('40001', 'x')).retryable).toBe(true);
    expect(classified(pgError('40P01', 'x')).retryable).toBe(true);
    for (const code of ['23505', '57014', '08006', '42501'])
      expect(classified(pgError(code, 'x')).retryable).toBe(false);
  });

  it.each(['ECONNREFUSED', 'ECONNRESET'])('socket error %s → connection', (code) => {
    const err = classified(socketError(code));
    expect(err.kind).toBe('connection');
    expect(err.code).toBe(code);
    expect(isConnectionError(socketError(code))).toBe(true);
  });

  it('pg-pool\'s "timeout exceeded when trying to connect" (every pooled connection in use) → pool_busy, not connection', () => {
    const err = new Error('timeout exceeded when trying to connect');
    expect(classified(err).kind).toBe('pool_busy');
    expect(isConnectionError(err)).toBe(false);
  });

  it.each(['Connection terminated unexpectedly', 'Connection terminated due to connection timeout'])(
    '%j (no code) → connection',
    (message) => {
      expect(classified(new Error(message)).kind).toBe('connection');
      expect(isConnectionError(new Error(message))).toBe(true);
    },
  );

  it.each<[string, AppError]>([
    ['failed_precondition', failedPrecondition('the task is not claimed by this worker')],
    ['invalid_argument', invalidArgument('title', 'is required')],
    ['not_found', notFound('task')],
    ['aborted', aborted('version mismatch')],
    ['unavailable', new AppError('unavailable', 'Connection terminated: shutting down')],
    ['internal', new AppError('internal', 'x')],
  ])('an AppError (%s) passes through unchanged, not wrapped', (_, appError) => {
    expect(classifyDbError(appError)).toBe(appError);
    expect(isConnectionError(appError)).toBe(false);
  });

  it('every AppError code passes through unchanged', () => {
    const codes: AppErrorCode[] = [
      'invalid_argument',
      'not_found',
      'already_exists',
      'failed_precondition',
      'aborted',
      'unauthenticated',
      'permission_denied',
      'resource_exhausted',
      'deadline_exceeded',
      'cancelled',
      'unavailable',
      'internal',
    ];
    for (const code of codes) {
      const err = new AppError(code, 'message');
      expect(classifyDbError(err)).toBe(err);
    }
  });

  it('a DbError is not classified twice', () => {
    const once = classified(pgError('23505', 'duplicate key'));
    expect(classifyDbError(once)).toBe(once);
  });

  it('other errors and non-errors pass through unchanged', () => {
    const plain = new Error('boom');
    const typeError = new TypeError("Cannot read properties of undefined (reading 'id')");
    const fsError = Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT' });
    const abort = new DOMException('This operation was aborted', 'AbortError');
    for (const err of [plain, typeError, fsError, abort, 'a string', null, undefined, { code: '23505' }]) {
      expect(classifyDbError(err)).toBe(err);
    }
  });
});

describe('toConnectError', () => {
  const requestId = 'req-7f3a9c';

  it.each<[AppErrorCode, Code]>([
    ['invalid_argument', Code.InvalidArgument],
    ['not_found', Code.NotFound],
    ['already_exists', Code.AlreadyExists],
    ['failed_precondition', Code.FailedPrecondition],
    ['aborted', Code.Aborted],
    ['unauthenticated', Code.Unauthenticated],
    ['permission_denied', Code.PermissionDenied],
    ['resource_exhausted', Code.ResourceExhausted],
    ['deadline_exceeded', Code.DeadlineExceeded],
    ['cancelled', Code.Canceled],
    ['unavailable', Code.Unavailable],
    ['internal', Code.Internal],
  ])('AppError %s → Code.%s with its message', (appCode, code) => {
    const { logger } = recordingLogger();
    const err = toConnectError(new AppError(appCode, 'title: is required', 'title'), logger, requestId);
    expect(err).toBeInstanceOf(ConnectError);
    expect(err.code).toBe(code);
    expect(err.rawMessage).toBe('title: is required');
  });

  it.each<[DbErrorKind, Code]>([
    ['unique', Code.AlreadyExists],
    ['foreign_key', Code.FailedPrecondition],
    ['check', Code.InvalidArgument],
    ['not_null', Code.InvalidArgument],
    ['invalid_input', Code.InvalidArgument],
    ['serialization', Code.Aborted],
    ['deadlock', Code.Aborted],
    ['timeout', Code.DeadlineExceeded],
    ['connection', Code.Unavailable],
    ['permission', Code.PermissionDenied],
    ['other', Code.Internal],
  ])('DbError %s → Code.%s, with no SQL text', (kind, code) => {
    const sql = 'select id, secret_hash from api_keys where tenant_id = 5';
    const cause = pgError('XX999', `relation "api_keys" ... ${sql}`, 'api_keys_pkey');
    const { logger } = recordingLogger();
    const err = toConnectError(new DbError(kind, 'XX999', 'api_keys_pkey', 'db message', { cause }), logger, requestId);
    expect(err.code).toBe(code);
    for (const leak of ['select', 'api_keys', 'relation', 'XX999', 'db message'])
      expect(err.message).not.toContain(leak);
  });

  it('errors classified from pg errors map end to end', () => {
    const { logger } = recordingLogger();
    const map = (e: Error) => toConnectError(classifyDbError(e), logger, requestId).code;
    expect(map(pgError('23505', 'duplicate key value violates unique constraint "x"'))).toBe(Code.AlreadyExists);
    expect(map(pgError('57014', 'canceling statement due to statement timeout'))).toBe(Code.DeadlineExceeded);
    expect(map(socketError('ECONNREFUSED'))).toBe(Code.Unavailable);
    expect(map(new Error('Connection terminated unexpectedly'))).toBe(Code.Unavailable);
  });

  it('DbError other → Internal naming the request id, and the cause is logged with it', () => {
    const cause = pgError('42601', 'syntax error at or near "selec" in: selec * from tasks');
    const { logger, lines } = recordingLogger();
    const err = toConnectError(classifyDbError(cause), logger, requestId);
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).toContain(requestId);
    expect(err.message).not.toContain('selec');
    expect(err.message).not.toContain('tasks');
    expect(lines.some((l) => l.level === 'error' && l.fields?.requestId === requestId)).toBe(true);
  });

  it('an unknown error → Internal whose message names the request id and not the original message', () => {
    const { logger, lines } = recordingLogger();
    const original = new TypeError('Cannot read properties of undefined (reading "secretHash")');
    const err = toConnectError(original, logger, requestId);
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).toContain(requestId);
    expect(err.message).not.toContain('secretHash');
    expect(err.message).not.toContain('Cannot read');
    // The operator can find it: logged with the same request id.
    expect(lines.some((l) => l.level === 'error' && l.fields?.requestId === requestId)).toBe(true);
  });

  it('non-Error values → Internal too', () => {
    const { logger } = recordingLogger();
    for (const thrown of ['password=s3cret', 42, null, undefined, { message: 'raw' }]) {
      const err = toConnectError(thrown, logger, requestId);
      expect(err.code).toBe(Code.Internal);
      expect(err.message).not.toContain('s3cret');
      expect(err.message).not.toContain('raw');
    }
  });

  it('a ConnectError passes through unchanged', () => {
    const { logger } = recordingLogger();
    const original = new ConnectError('deadline', Code.DeadlineExceeded);
    expect(toConnectError(original, logger, requestId)).toBe(original);
  });
});
