import { invalidArgument } from '../../errors.js';
import { snake } from '../validate.js';

/**
 * The fields an update writes. With a mask: exactly its paths (snake_case or the lowerCamelCase
 * of proto JSON), each of which must be updatable. Without one: every updatable field the
 * message sets to a non-default value, so that sending `{id, title}` changes only the title.
 * @throws AppError invalid_argument (update_mask) for a path that is not updatable.
 */
export function fieldsToWrite<F extends string, M extends object>(
  paths: readonly string[],
  updatable: readonly F[],
  message: M,
  isSet: Partial<Record<F, (m: M) => boolean>> = {},
): F[] {
  if (paths.length > 0) {
    const fields = paths.map((p) => snake(p.trim()));
    for (const f of fields) {
      if (!updatable.includes(f as F)) {
        throw invalidArgument('update_mask', `"${f}" is not an updatable field (updatable: ${updatable.join(', ')})`);
      }
    }
    return [...new Set(fields)] as F[];
  }
  return updatable.filter((f) => {
    const custom = isSet[f];
    if (custom) return custom(message);
    const value = (message as Record<string, unknown>)[f.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())];
    if (Array.isArray(value)) return value.length > 0;
    return value !== undefined && value !== '' && value !== 0 && value !== 0n && value !== false;
  });
}
