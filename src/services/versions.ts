import { aborted } from '../errors.js';

/**
 * The optimistic-concurrency check of every write that accepts `expected_version` (null: no
 * check). Called on the row locked for the write, so nothing can move it in between.
 * @throws AppError aborted on a mismatch.
 */
export function checkVersion(what: 'task' | 'project', current: { version: bigint }, expected: bigint | null): void {
  if (expected !== null && current.version !== expected) {
    throw aborted(`expected_version: the ${what} is at version ${current.version}, not ${expected}`);
  }
}
