/**
 * Who is calling, as the services see it: the tenant (always), the worker the API key is bound
 * to (if any), and the call's deadline and cancellation. Built by the RPC layer's
 * authentication interceptor; services never see headers.
 */
import { createHash } from 'node:crypto';
import type { Database, TransactionOptions, Tx } from '../db/index.js';
import { DbError } from '../db/index.js';
import type { JsonValue } from '../domain.js';
import { AppError, invalidArgument } from '../errors.js';
import { describeLimit, LIMITS } from '../limits.js';
import { apiKeyFromPrologue, apiKeyPrologue } from '../repositories/api-keys.js';
import * as idempotency from '../repositories/idempotency.js';
import { fromTaggedJson, toTaggedJson } from './tagged-json.js';

export interface Caller {
  readonly tenantId: bigint;
  /**
   * SHA-256 of the caller's API key. It is checked (exists, not revoked) by the first statement
   * of every transaction the call runs, before any tenant data is read: that costs no extra
   * round trip, and a revoked key fails its very next call. Absent for trusted in-process callers.
   */
  readonly apiKeyHash?: Buffer;
  /** The acting worker of a trusted in-process caller (with a key, the key decides). */
  readonly actorWorkerId?: bigint | null;
  readonly signal?: AbortSignal;
  /** Time left before the caller's deadline. */
  readonly timeoutMs?: number;
}

/** Who acts in a transaction: the worker the API key is bound to, if any. */
export interface Actor {
  readonly workerId: bigint | null;
}

function txOptions(caller: Caller, extra: TransactionOptions = {}): TransactionOptions {
  return { signal: caller.signal, timeoutMs: caller.timeoutMs, ...extra };
}

/**
 * What a violated constraint means to the client: the field it is about, and the code. Kept
 * next to the services because the constraint names are the migrations' and the fields the API's.
 */
const CONSTRAINTS: Readonly<Record<string, { code: AppError['code']; field: string; message: string }>> = {
  tenants_subdomain_key: {
    code: 'already_exists',
    field: 'subdomain',
    message: 'a tenant with this subdomain already exists',
  },
  workers_handle_key: { code: 'already_exists', field: 'handle', message: 'a worker with this handle already exists' },
  tasks_project_fkey: { code: 'failed_precondition', field: 'project_id', message: 'project not found' },
  tasks_assignee_fkey: { code: 'failed_precondition', field: 'assignee_id', message: 'worker not found' },
  tasks_created_by_fkey: { code: 'failed_precondition', field: 'created_by_id', message: 'worker not found' },
  tasks_parent_fkey: {
    code: 'failed_precondition',
    field: 'parent_task_id',
    message: 'parent task not found in this project',
  },
  tasks_not_own_parent: {
    code: 'failed_precondition',
    field: 'parent_task_id',
    message: 'a task cannot be its own parent',
  },
  api_keys_worker_fkey: { code: 'failed_precondition', field: 'worker_id', message: 'worker not found' },
  tasks_title_length: { code: 'invalid_argument', field: 'title', message: describeLimit.chars(LIMITS.titleChars, 1) },
  tasks_description_size: {
    code: 'invalid_argument',
    field: 'description',
    message: describeLimit.bytes(LIMITS.textBytes),
  },
  tasks_tags_count: { code: 'invalid_argument', field: 'tags', message: describeLimit.items(LIMITS.tags, 'tags') },
  tasks_required_capabilities_strings: {
    code: 'invalid_argument',
    field: 'required_capabilities',
    message: describeLimit.items(LIMITS.capabilities, 'capabilities'),
  },
  tasks_max_attempts_range: {
    code: 'invalid_argument',
    field: 'max_attempts',
    message: describeLimit.range(0, LIMITS.maxAttempts),
  },
  tasks_last_error_size: {
    code: 'invalid_argument',
    field: 'error',
    message: describeLimit.bytes(LIMITS.lastErrorBytes),
  },
  projects_name_length: { code: 'invalid_argument', field: 'name', message: describeLimit.chars(LIMITS.nameChars, 1) },
  projects_description_size: {
    code: 'invalid_argument',
    field: 'description',
    message: describeLimit.bytes(LIMITS.textBytes),
  },
  projects_metadata_object: {
    code: 'invalid_argument',
    field: 'metadata',
    message: describeLimit.bytes(LIMITS.metadataBytes),
  },
  workers_capabilities_count: {
    code: 'invalid_argument',
    field: 'capabilities',
    message: describeLimit.items(LIMITS.capabilities, 'capabilities'),
  },
  workers_handle_format: { code: 'invalid_argument', field: 'handle', message: 'must look like @name' },
  workers_email_format: { code: 'invalid_argument', field: 'email', message: 'is not an email address' },
  tenants_subdomain_format: { code: 'invalid_argument', field: 'subdomain', message: 'must be a DNS label' },
};

/** Turns a constraint violation into the client's error; anything else passes unchanged. */
export function explainDbError(err: unknown): unknown {
  if (err instanceof DbError && err.constraint) {
    const known = CONSTRAINTS[err.constraint];
    if (known) return new AppError(known.code, `${known.field}: ${known.message}`, known.field);
  }
  return err;
}

/**
 * Runs `fn` in a transaction of the caller's tenant, bounded by the caller's deadline, with
 * constraint violations explained. The caller's API key is verified first, in the same
 * transaction.
 * @throws AppError unauthenticated when the key is unknown or revoked.
 */
export async function inTenant<T>(
  db: Database,
  caller: Caller,
  fn: (tx: Tx, actor: Actor) => Promise<T>,
  extra?: TransactionOptions,
): Promise<T> {
  try {
    return await db.withTenantTransaction(
      caller.tenantId,
      async (tx, prologue) => {
        let actor: Actor = { workerId: caller.actorWorkerId ?? null };
        if (caller.apiKeyHash) {
          const key = apiKeyFromPrologue(prologue);
          if (!key) throw new AppError('unauthenticated', 'invalid API key');
          if (key.revoked) throw new AppError('unauthenticated', 'the API key was revoked');
          actor = { workerId: key.workerId };
        }
        return fn(tx, actor);
      },
      {
        ...txOptions(caller, extra),
        prologue: caller.apiKeyHash ? apiKeyPrologue(caller.tenantId, caller.apiKeyHash) : undefined,
      },
    );
  } catch (err) {
    throw explainDbError(err);
  }
}

/**
 * Idempotent create: with a request id, the first run's result is stored in the same
 * transaction and every retry with the same id and request gets it back without writing.
 * The same id with a different request (or operation) is INVALID_ARGUMENT.
 */
export async function idempotent<T>(
  tx: Tx,
  requestId: string,
  operation: string,
  request: unknown,
  run: () => Promise<T>,
): Promise<T> {
  if (requestId === '') return run();
  if (requestId.length > LIMITS.requestIdChars)
    throw invalidArgument('request_id', describeLimit.chars(LIMITS.requestIdChars));
  const hash = requestHash(operation, request);
  if (await idempotency.claimRequestId(tx, requestId, hash)) {
    const result = await run();
    await idempotency.saveResponse(tx, requestId, toTaggedJson(result));
    return result;
  }
  const record = await idempotency.findRecord(tx, requestId);
  if (!record?.requestHash.equals(hash)) {
    throw invalidArgument('request_id', 'was already used for a different request');
  }
  if (record.response === null)
    throw new AppError('aborted', 'the first request with this request_id is still running');
  return fromTaggedJson<T>(record.response as JsonValue);
}

/** What identifies a request for idempotency: the operation and its (resolved) input. */
export function requestHash(operation: string, request: unknown): Buffer {
  return createHash('sha256')
    .update(operation)
    .update('\0')
    .update(JSON.stringify(toTaggedJson(request)))
    .digest();
}

/** The creator of a write: the key's worker, or the explicit id, which must then agree. */
export function resolveActor(actor: Actor, explicit: bigint | null, field = 'created_by_id'): bigint {
  if (actor.workerId !== null) {
    if (explicit !== null && explicit !== actor.workerId) {
      throw new AppError('permission_denied', `${field}: must be the worker of the API key`, field);
    }
    return actor.workerId;
  }
  if (explicit === null) throw invalidArgument(field, 'is required');
  return explicit;
}
