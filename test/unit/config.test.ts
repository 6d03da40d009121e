import { describe, expect, it } from 'vitest';
import {
  ACCEPTED_DATABASE_URL_FORMS,
  DatabaseUrlError,
  DEFAULT_PGLITE_DIR,
  parseDatabaseUrl,
  redactDatabaseUrl,
} from '../../src/config/database-url.js';
import { ConfigError, loadConfig } from '../../src/config/index.js';

const PASSWORD = 's3cretPW';

/** The ConfigError loadConfig throws for `env`; fails the test when it does not throw one. */
function configError(env: Record<string, string | undefined>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(Object.keys(env))}`);
}

/** Everything an operator could see of an error. */
const visible = (err: ConfigError) => [err.message, String(err.stack), ...err.problems, JSON.stringify(err)].join('\n');

describe('DATABASE_URL: accepted forms', () => {
  it.each([
    ['unset', undefined],
    ['empty', ''],
    ['blank', '   '],
  ])('%s → embedded PGlite in ./.data/pglite', (_, value) => {
    expect(DEFAULT_PGLITE_DIR).toBe('./.data/pglite');
    expect(parseDatabaseUrl(value)).toEqual({ kind: 'pglite', dataDir: './.data/pglite' });
    expect(loadConfig(value === undefined ? {} : { DATABASE_URL: value }).database).toEqual({
      kind: 'pglite',
      dataDir: './.data/pglite',
    });
  });

  it('memory:// → embedded PGlite in memory', () => {
    expect(parseDatabaseUrl('memory://')).toEqual({ kind: 'pglite', dataDir: null });
    expect(loadConfig({ DATABASE_URL: 'memory://' }).database).toEqual({ kind: 'pglite', dataDir: null });
  });

  it('pglite:///abs/path → embedded PGlite persisted in that directory', () => {
    expect(parseDatabaseUrl('pglite:///var/lib/taskapi')).toEqual({ kind: 'pglite', dataDir: '/var/lib/taskapi' });
    expect(loadConfig({ DATABASE_URL: 'pglite:///abs/path' }).database).toEqual({
      kind: 'pglite',
      dataDir: '/abs/path',
    });
  });

  it.each([
    ['postgres://u:pw@db.example.com:5432/taskapi', 'postgresql://u:pw@db.example.com:5432/taskapi'],
    ['postgresql://u:pw@db.example.com:5432/taskapi', 'postgresql://u:pw@db.example.com:5432/taskapi'],
    ['postgresql://db.example.com/taskapi?sslmode=require', 'postgresql://db.example.com/taskapi?sslmode=require'],
  ])('%s → PostgreSQL server', (value, url) => {
    const target = parseDatabaseUrl(value);
    expect(target.kind).toBe('postgres');
    // Both scheme spellings reach `pg` as one URL naming the same server, user and database.
    expect(target).toEqual({ kind: 'postgres', url });
    expect(loadConfig({ DATABASE_URL: value }).database).toEqual({ kind: 'postgres', url });
  });

  it.each([
    ['postgresql+asyncpg://u:pw@db.example.com:5432/taskapi', 'postgresql://u:pw@db.example.com:5432/taskapi'],
    [
      'postgresql+psycopg://u:pw@db.example.com/taskapi?sslmode=require',
      'postgresql://u:pw@db.example.com/taskapi?sslmode=require',
    ],
  ])('SQLAlchemy-style %s is normalized to postgresql://', (value, url) => {
    expect(parseDatabaseUrl(value)).toEqual({ kind: 'postgres', url });
    expect(loadConfig({ DATABASE_URL: value }).database).toEqual({ kind: 'postgres', url });
  });

  it('unix-socket form postgresql:///db?host=/var/run/postgresql', () => {
    const target = parseDatabaseUrl('postgresql:///db?host=/var/run/postgresql');
    expect(target.kind).toBe('postgres');
    const url = new URL((target as { url: string }).url);
    expect(url.protocol).toBe('postgresql:');
    expect(url.hostname).toBe('');
    expect(url.pathname).toBe('/db');
    expect(url.searchParams.get('host')).toBe('/var/run/postgresql');
  });
});

describe('DATABASE_URL: rejected forms', () => {
  it.each([
    ['sqlite', 'sqlite:///x.db'],
    ['sqlite with a password', `sqlite://u:${PASSWORD}@/x.db`],
    ['mysql', `mysql://u:${PASSWORD}@db.example.com/taskapi`],
    ['garbage text', `not a url ${PASSWORD}`],
    ['postgresql:// with no host', 'postgresql://'],
    ['postgresql:///db with no host', `postgresql:///db`],
    ['postgresql with a password and no host', `postgresql://u:${PASSWORD}@/db`],
    ['pglite:// with no path', 'pglite://'],
    ['pglite:/// with no path', 'pglite:///'],
  ])('%s: error names DATABASE_URL and the accepted forms, never the password', (_, value) => {
    expect(() => parseDatabaseUrl(value)).toThrow(DatabaseUrlError);
    const err = configError({ DATABASE_URL: value });
    expect(err.problems).toHaveLength(1);
    expect(err.problems[0]).toMatch(/^DATABASE_URL: /);
    expect(err.message).toContain('DATABASE_URL');
    for (const form of [
      'postgres://',
      'postgresql://',
      'postgresql+asyncpg://',
      'postgresql+psycopg://',
      'pglite:///',
      'memory://',
    ]) {
      expect(err.message).toContain(form);
    }
    expect(err.message).toContain(ACCEPTED_DATABASE_URL_FORMS);
    expect(visible(err)).not.toContain(PASSWORD);
  });

  it('the parser itself never echoes a password either', () => {
    for (const value of [`postgresql://u:${PASSWORD}@/db`, `mysql://u:${PASSWORD}@h/db`, `x ${PASSWORD}`]) {
      let message = '';
      try {
        parseDatabaseUrl(value);
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).not.toBe('');
      expect(message).not.toContain(PASSWORD);
    }
  });
});

describe('loadConfig', () => {
  it('defaults', () => {
    const config = loadConfig({});
    expect(config.port).toBe(50051);
    expect(config.migrateOnStart).toBe(true);
    expect(config.tenancyMode).toBe('row');
    expect(config.adminToken).toBeUndefined();
    expect(config.database).toEqual({ kind: 'pglite', dataDir: './.data/pglite' });
    const server = loadConfig({ DATABASE_URL: 'postgresql://db.example.com/taskapi' });
    expect(server.pool).toEqual({
      max: 10,
      idleTimeoutMs: 10_000,
      connectionTimeoutMs: 5_000,
      maxLifetimeSeconds: 1_800,
      statementTimeoutMs: 30_000,
      prepareStatements: true,
      tenantMax: 5,
    });
    expect(server.pageTokenSecret).toBeUndefined();
  });

  it('reads every variable', () => {
    const config = loadConfig({
      DATABASE_URL: 'postgres://db.example.com/taskapi',
      PORT: '8080',
      ADMIN_TOKEN: 'a'.repeat(16),
      MIGRATE_ON_START: 'false',
      TENANCY_MODE: 'schema',
      DB_POOL_MAX: '25',
      DB_POOL_IDLE_TIMEOUT_MS: '1000',
      DB_CONNECTION_TIMEOUT_MS: '2000',
      DB_POOL_MAX_LIFETIME_SECONDS: '60',
      DB_STATEMENT_TIMEOUT_MS: '3000',
      DB_PREPARED_STATEMENTS: 'true',
      DB_POOL_TENANT_MAX: '7',
      PAGE_TOKEN_SECRET: 's'.repeat(32),
    });
    expect(config.port).toBe(8080);
    expect(config.adminToken).toBe('a'.repeat(16));
    expect(config.migrateOnStart).toBe(false);
    expect(config.tenancyMode).toBe('schema');
    expect(config.pool).toEqual({
      max: 25,
      idleTimeoutMs: 1000,
      connectionTimeoutMs: 2000,
      maxLifetimeSeconds: 60,
      statementTimeoutMs: 3000,
      prepareStatements: true,
      tenantMax: 7,
    });
    expect(config.pageTokenSecret).toBe('s'.repeat(32));
  });

  it('DB_POOL_TENANT_MAX: half the pool by default, at least 1, at most the pool', () => {
    const server = (env: Record<string, string>) =>
      loadConfig({ DATABASE_URL: 'postgresql://db.example.com/x', ...env }).pool;
    expect(server({ DB_POOL_MAX: '1' }).tenantMax).toBe(1);
    expect(server({ DB_POOL_MAX: '3' }).tenantMax).toBe(1);
    expect(server({ DB_POOL_MAX: '20' }).tenantMax).toBe(10);
    expect(server({ DB_POOL_MAX: '4', DB_POOL_TENANT_MAX: '9' }).tenantMax).toBe(4);
    expect(loadConfig({ DATABASE_URL: 'memory://' }).pool.tenantMax).toBe(1);
    expect(configError({ DB_POOL_TENANT_MAX: '0' }).problems).toEqual([expect.stringMatching(/^DB_POOL_TENANT_MAX: /)]);
  });

  it('PAGE_TOKEN_SECRET shorter than 32 characters is refused without repeating it', () => {
    const secret = 'short-page-token-secret';
    const err = configError({ PAGE_TOKEN_SECRET: secret });
    expect(err.problems).toEqual([expect.stringMatching(/^PAGE_TOKEN_SECRET: .*32/)]);
    expect(visible(err)).not.toContain(secret);
  });

  it.each([
    ['true', true],
    ['TRUE', true],
    ['1', true],
    ['yes', true],
    ['false', false],
    ['0', false],
    ['no', false],
    ['', true],
  ])('MIGRATE_ON_START=%j → %s', (value, expected) => {
    expect(loadConfig({ MIGRATE_ON_START: value }).migrateOnStart).toBe(expected);
  });

  it('several bad variables: one ConfigError naming every one of them', () => {
    const err = configError({ PORT: 'abc', DB_POOL_MAX: '0', TENANCY_MODE: 'x', MIGRATE_ON_START: 'maybe' });
    const named = err.problems.map((p) => p.split(':')[0]).sort();
    expect(named).toEqual(['DB_POOL_MAX', 'MIGRATE_ON_START', 'PORT', 'TENANCY_MODE']);
    for (const name of named) expect(err.message).toContain(name);
  });

  it('every bad variable is reported together with a bad DATABASE_URL, and no secret is repeated', () => {
    const token = 'shortTok3n';
    const err = configError({
      DATABASE_URL: `postgresql://u:${PASSWORD}@/db`,
      ADMIN_TOKEN: token,
      PORT: '70000',
      DB_STATEMENT_TIMEOUT_MS: '-5',
    });
    expect(err.problems.map((p) => p.split(':')[0]).sort()).toEqual([
      'DATABASE_URL',
      'DB_STATEMENT_TIMEOUT_MS',
      'PORT',
    ]);
    expect(visible(err)).not.toContain(PASSWORD);
    expect(visible(err)).not.toContain(token);
  });

  it.each(['abc', '-1', '65536', '1.5', '80 80'])('PORT=%j is rejected', (port) => {
    expect(configError({ PORT: port }).problems).toEqual([expect.stringMatching(/^PORT: /)]);
  });

  it('ADMIN_TOKEN shorter than 16 characters is accepted but flagged weak (the start warns)', () => {
    const token = 'fifteen-chars-x';
    expect(token).toHaveLength(15);
    expect(loadConfig({ ADMIN_TOKEN: token })).toMatchObject({ adminToken: token, adminTokenWeak: true });
    expect(loadConfig({ ADMIN_TOKEN: `${token}y` })).toMatchObject({ adminToken: `${token}y`, adminTokenWeak: false });
    expect(loadConfig({}).adminTokenWeak).toBe(false);
  });

  it('embedded PGlite never uses named prepared statements (they outlive its connections)', () => {
    expect(loadConfig({ DATABASE_URL: 'memory://', DB_PREPARED_STATEMENTS: 'true' }).pool.prepareStatements).toBe(
      false,
    );
    expect(
      loadConfig({ DATABASE_URL: 'postgresql://db.example.com/x', DB_PREPARED_STATEMENTS: 'false' }).pool
        .prepareStatements,
    ).toBe(false);
    expect(
      loadConfig({ DATABASE_URL: 'postgresql://db.example.com/x', DB_PREPARED_STATEMENTS: 'true' }).pool
        .prepareStatements,
    ).toBe(true);
  });

  it('embedded PGlite forces a pool of one connection', () => {
    for (const DATABASE_URL of [undefined, 'memory://', 'pglite:///abs/path']) {
      expect(loadConfig({ DATABASE_URL, DB_POOL_MAX: '20' }).pool.max).toBe(1);
    }
    expect(loadConfig({ DATABASE_URL: 'postgresql://db.example.com/taskapi', DB_POOL_MAX: '20' }).pool.max).toBe(20);
  });

  it('edge limits: defaults, every variable read, and the one rule between them', () => {
    expect(loadConfig({}).server).toEqual({
      maxConnections: 4_096,
      firstRequestTimeoutMs: 10_000,
      http2IdleTimeoutMs: 300_000,
      http1KeepAliveTimeoutMs: 5_000,
      http1HeadersTimeoutMs: 10_000,
      http1RequestTimeoutMs: 30_000,
      maxHeaderBytes: 65_536,
    });
    expect(
      loadConfig({
        MAX_CONNECTIONS: '50',
        FIRST_REQUEST_TIMEOUT_MS: '2000',
        HTTP2_IDLE_TIMEOUT_MS: '0',
        HTTP1_KEEP_ALIVE_TIMEOUT_MS: '1000',
        HTTP1_HEADERS_TIMEOUT_MS: '3000',
        HTTP1_REQUEST_TIMEOUT_MS: '4000',
        MAX_HEADER_BYTES: '8192',
      }).server,
    ).toEqual({
      maxConnections: 50,
      firstRequestTimeoutMs: 2_000,
      http2IdleTimeoutMs: 0,
      http1KeepAliveTimeoutMs: 1_000,
      http1HeadersTimeoutMs: 3_000,
      http1RequestTimeoutMs: 4_000,
      maxHeaderBytes: 8_192,
    });
    expect(
      configError({ MAX_CONNECTIONS: '0', MAX_HEADER_BYTES: '10' })
        .problems.map((p) => p.split(':')[0])
        .sort(),
    ).toEqual(['MAX_CONNECTIONS', 'MAX_HEADER_BYTES']);
    expect(configError({ HTTP1_HEADERS_TIMEOUT_MS: '5000', HTTP1_REQUEST_TIMEOUT_MS: '4000' }).problems).toEqual([
      expect.stringMatching(/^HTTP1_HEADERS_TIMEOUT_MS: must not be longer than HTTP1_REQUEST_TIMEOUT_MS/),
    ]);
  });

  it('TLS: both files or neither', () => {
    expect(loadConfig({}).tls).toBeNull();
    expect(loadConfig({ TLS_CERT_FILE: '/etc/taskapi/cert.pem', TLS_KEY_FILE: '/etc/taskapi/key.pem' }).tls).toEqual({
      certFile: '/etc/taskapi/cert.pem',
      keyFile: '/etc/taskapi/key.pem',
    });
    expect(configError({ TLS_CERT_FILE: '/etc/taskapi/cert.pem' }).problems).toEqual([
      expect.stringMatching(/^TLS_KEY_FILE: /),
    ]);
    expect(configError({ TLS_KEY_FILE: '/etc/taskapi/key.pem' }).problems).toEqual([
      expect.stringMatching(/^TLS_CERT_FILE: /),
    ]);
  });

  it('the config is frozen, nested objects too', () => {
    for (const DATABASE_URL of [undefined, 'postgresql://db.example.com/taskapi']) {
      const config = loadConfig({ DATABASE_URL });
      expect(Object.isFrozen(config)).toBe(true);
      expect(Object.isFrozen(config.pool)).toBe(true);
      expect(Object.isFrozen(config.database)).toBe(true);
      expect(Object.isFrozen(config.server)).toBe(true);
      expect(() => {
        (config as { port: number }).port = 1;
      }).toThrow(TypeError);
      expect(() => {
        (config.pool as { max: number }).max = 99;
      }).toThrow(TypeError);
    }
  });

  it('does not read process.env', () => {
    const saved = process.env.PORT;
    process.env.PORT = '1234';
    try {
      expect(loadConfig({}).port).toBe(50051);
    } finally {
      if (saved === undefined) delete process.env.PORT;
      else process.env.PORT = saved;
    }
  });
});

describe('redactDatabaseUrl', () => {
  const redacted = (value: string) => redactDatabaseUrl(parseDatabaseUrl(value));

  it('hides the password and keeps the rest', () => {
    const out = redacted(`postgresql://alice:${PASSWORD}@db.example.com:5432/taskapi`);
    expect(out).not.toContain(PASSWORD);
    expect(out).toContain('alice');
    expect(out).toContain('db.example.com:5432/taskapi');
  });

  it('hides a password with escaped characters', () => {
    const out = redacted('postgresql://alice:p%40ss%2Fw0rd@db.example.com/taskapi');
    expect(out).not.toContain('p%40ss');
    expect(out).not.toContain('p@ss');
  });

  it('hides a password of a normalized SQLAlchemy URL', () => {
    expect(redacted(`postgresql+asyncpg://alice:${PASSWORD}@db.example.com/taskapi`)).not.toContain(PASSWORD);
  });

  it('hides a password given as a query parameter', () => {
    const out = redacted(`postgresql://alice@db.example.com/taskapi?password=${PASSWORD}&sslmode=require`);
    expect(out).not.toContain(PASSWORD);
    expect(out).toContain('sslmode=require');
  });

  it('leaves a URL without a password as it is', () => {
    expect(redacted('postgresql://alice@db.example.com/taskapi')).toBe('postgresql://alice@db.example.com/taskapi');
  });

  it('names embedded targets', () => {
    expect(redacted('memory://')).toBe('memory://');
    expect(redacted('pglite:///var/lib/taskapi')).toContain('/var/lib/taskapi');
  });
});
