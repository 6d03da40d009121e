/**
 * Idempotent creates and claims: a request id with the hash of its request, and the first
 * run's response replayed to every retry.
 */
import type { Tx } from '../db/index.js';
import type { JsonValue } from '../domain.js';
import { AppError, invalidArgument } from '../errors.js';
import { describeLimit, LIMITS } from '../limits.js';
import * as idempotency from '../repositories/idempotency.js';
import { sha256 } from './sha256.js';
import { fromTaggedJson, toTaggedJson } from './tagged-json.js';

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
  return sha256(operation, '\0', JSON.stringify(toTaggedJson(request)));
}
