/**
 * DATABASE_URL forms accepted by the service (SPEC §2). Kept apart from the zod schema so that
 * the parser can be unit-tested on every form without touching the environment.
 */

export type DatabaseTarget =
  | { readonly kind: 'postgres'; readonly url: string }
  | { readonly kind: 'pglite'; readonly dataDir: string | null };

export const DEFAULT_PGLITE_DIR = './.data/pglite';

export const ACCEPTED_DATABASE_URL_FORMS =
  'postgres://…, postgresql://…, postgresql+asyncpg://…, postgresql+psycopg://…, pglite:///path/to/dir, memory://';

/** SQLAlchemy driver suffixes that name a PostgreSQL server; they mean nothing to `pg`. */
const POSTGRES_SCHEME = /^(postgres|postgresql)(\+(asyncpg|psycopg|psycopg2|pg8000))?:$/i;

export class DatabaseUrlError extends Error {}

/**
 * Parses DATABASE_URL into a target. The messages never echo the value: it may hold a password.
 * @throws DatabaseUrlError when the form is not one of the accepted ones.
 */
export function parseDatabaseUrl(raw: string | undefined): DatabaseTarget {
  const value = raw?.trim() ?? '';
  if (value === '') return { kind: 'pglite', dataDir: DEFAULT_PGLITE_DIR };
  if (/^memory:\/\/\/?$/i.test(value)) return { kind: 'pglite', dataDir: null };
  if (/^pglite:/i.test(value)) {
    const path = value.replace(/^pglite:(\/\/)?/i, '');
    if (path === '' || path === '/') {
      throw new DatabaseUrlError(
        `pglite URL needs a directory, like pglite:///var/lib/taskapi; accepted forms: ${ACCEPTED_DATABASE_URL_FORMS}`,
      );
    }
    return { kind: 'pglite', dataDir: decodeURIComponent(path) };
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new DatabaseUrlError(`not a URL; accepted forms: ${ACCEPTED_DATABASE_URL_FORMS}`);
  }
  if (!POSTGRES_SCHEME.test(url.protocol)) {
    throw new DatabaseUrlError(
      `unsupported scheme "${url.protocol.replace(/:$/, '')}"; accepted forms: ${ACCEPTED_DATABASE_URL_FORMS}`,
    );
  }
  // `new URL` only fills host/pathname for schemes it knows, so re-parse under a known one.
  const normalized = new URL(value.replace(/^[^:]+:/, 'postgresql:'));
  const socketHost = normalized.searchParams.get('host');
  if (normalized.hostname === '' && !socketHost) {
    throw new DatabaseUrlError(
      `missing host, like postgresql://user@db.example.com:5432/taskapi; accepted forms: ${ACCEPTED_DATABASE_URL_FORMS}`,
    );
  }
  return { kind: 'postgres', url: normalized.toString() };
}

/** The URL with its password replaced, for logs. */
export function redactDatabaseUrl(target: DatabaseTarget): string {
  if (target.kind === 'pglite') return target.dataDir === null ? 'memory://' : `pglite://${target.dataDir}`;
  const url = new URL(target.url);
  if (url.password) url.password = '***';
  // libpq (and pg) also take the password as a query parameter.
  if (url.searchParams.has('password')) url.searchParams.set('password', '***');
  return url.toString();
}
