import { createHash } from 'node:crypto';

/**
 * The one SHA-256 of the service: of API key secrets (only the hash is stored), of the admin
 * token (compared in constant time), and of idempotent requests. Parts are hashed in order,
 * as if concatenated.
 */
export function sha256(...parts: readonly (string | Buffer)[]): Buffer {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest();
}
