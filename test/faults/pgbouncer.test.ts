/**
 * The service behind PgBouncer (transaction pooling, Debian's 1.18, so no named prepared
 * statements), migrated over a direct connection. PgBouncer itself restarted under write load,
 * and PostgreSQL restarted behind it. After a failed server login PgBouncer waits
 * `server_login_retry` seconds (15 by default) before it tries again, and calls fail
 * UNAVAILABLE meanwhile; this PgBouncer uses 1 s.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acknowledgedMore, expectLoadIntact, underLoad, WriteLoad } from './support/load.js';
import { PgBouncer } from './support/pgbouncer.js';
import { PostgresCluster } from './support/postgres-cluster.js';
import { ServiceProcess } from './support/service.js';

const DB = 'taskapi';
let cluster: PostgresCluster;
let bouncer: PgBouncer;
let service: ServiceProcess;

beforeAll(async () => {
  cluster = await PostgresCluster.create();
  await cluster.query(`create database ${DB}`);
  // Migrations hold a session advisory lock: never through a transaction pooler.
  await promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/cli/migrate.ts', 'up'], {
    cwd: join(import.meta.dirname, '../..'),
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', DATABASE_URL: cluster.url(DB) },
  });
  bouncer = await PgBouncer.start({ serverHost: '127.0.0.1', serverPort: cluster.port, serverLoginRetry: 1 });
  service = await ServiceProcess.start(bouncer.url(DB), {
    MIGRATE_ON_START: 'false',
    DB_PREPARED_STATEMENTS: 'false',
    DB_POOL_MAX: '8',
    DB_CONNECTION_TIMEOUT_MS: '2000',
  });
});

afterAll(async () => {
  service?.kill();
  await bouncer?.destroy();
  cluster?.destroy();
});

describe('behind PgBouncer (transaction mode)', () => {
  it('PgBouncer restarted under write load: UNAVAILABLE meanwhile, then recovery, nothing lost', async () => {
    const tenant = await service.tenant('bouncerrestart');
    const load = new WriteLoad(service, tenant, 8, 'bouncer');
    const report = await underLoad(load, `PgBouncer restart`, async () => {
      await acknowledgedMore(load, 40);
      const down = Date.now();
      await bouncer.restart();
      const up = Date.now();
      await acknowledgedMore(load, 40);
      const recovered = load.firstAckAfter(up)!;
      console.log(
        `PgBouncer restart: down ${up - down} ms; first acknowledged write ${recovered - up} ms after it was back`,
      );
      expect(recovered - up).toBeLessThan(5_000);
    });
    await expectLoadIntact(cluster, DB, tenant, report);
    expect(await service.health()).toBe('SERVING');
    expect(service.crashes()).toEqual([]);
  });

  it('PostgreSQL restarted behind PgBouncer: recovery within server_login_retry', async () => {
    const tenant = await service.tenant('bouncerpg');
    const load = new WriteLoad(service, tenant, 8, 'bouncerpg');
    const report = await underLoad(load, `PostgreSQL restart behind PgBouncer`, async () => {
      await acknowledgedMore(load, 40);
      const down = Date.now();
      await cluster.restart('fast');
      const up = Date.now();
      await acknowledgedMore(load, 40);
      const recovered = load.firstAckAfter(up)!;
      console.log(
        `PostgreSQL restart behind PgBouncer: down ${up - down} ms; first acknowledged write ${recovered - up} ms after it was back`,
      );
      // server_login_retry = 1 s here; with the default 15 s this would take up to 15 s.
      expect(recovered - up).toBeLessThan(5_000);
    });
    await expectLoadIntact(cluster, DB, tenant, report);
    expect(await service.health()).toBe('SERVING');
    expect(service.crashes()).toEqual([]);
  });
});
