/**
 * Errors of the service's own making, independent of any transport. The RPC layer maps each
 * code to the gRPC code of the same name (src/rpc/errors.ts).
 */

export type AppErrorCode =
  | 'invalid_argument'
  | 'not_found'
  | 'already_exists'
  | 'failed_precondition'
  | 'aborted'
  | 'unauthenticated'
  | 'permission_denied'
  | 'resource_exhausted'
  | 'deadline_exceeded'
  | 'cancelled'
  | 'unavailable'
  | 'internal';

export class AppError extends Error {
  override readonly name = 'AppError';
  constructor(
    readonly code: AppErrorCode,
    message: string,
    /** The request field the error is about, when there is one. */
    readonly field?: string,
  ) {
    super(message);
  }
}

export const invalidArgument = (field: string, message: string) =>
  new AppError('invalid_argument', `${field}: ${message}`, field);
export const notFound = (what: string) => new AppError('not_found', `${what} not found`);
export const failedPrecondition = (message: string, field?: string) =>
  new AppError('failed_precondition', field ? `${field}: ${message}` : message, field);
export const aborted = (message: string) => new AppError('aborted', message);
