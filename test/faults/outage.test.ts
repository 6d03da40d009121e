/**
 * PostgreSQL stopped for a while: calls fail fast with UNAVAILABLE (a refused connection is
 * known at once; nobody should wait for a timeout), health says NOT_SERVING, and when the server
 * is back the service recovers by itself, with every acknowledged write in place.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acknowledgedMore, expectLoadIntact, underLoad, WriteLoad } from './support/load.js';
import { PostgresCluster } from './support/postgres-cluster.js';
import { waitFor } from './support/processes.js';
import { codeOf, ServiceProcess } from './support/service.js';

const DB = 'taskapi';
/** Long enough for pooled connections to be found dead and for idle ones to time out. */
const OUTAGE_MS = 8_000;
let cluster: PostgresCluster;
let service: ServiceProcess;

beforeAll(async () => {
  cluster = await PostgresCluster.create();
  await cluster.query(`create database ${DB}`);
  service = await ServiceProcess.start(cluster.url(DB), { DB_POOL_MAX: '4', DB_POOL_IDLE_TIMEOUT_MS: '3000' });
});

afterAll(async () => {
  service?.kill();
  cluster?.destroy();
});

describe('PostgreSQL down for a while', () => {
  it('answers UNAVAILABLE fast, reports NOT_SERVING, and recovers when the server is back', async () => {
    const tenant = await service.tenant('outage');
    const load = new WriteLoad(service, tenant, 2, 'outage');
    const report = await underLoad(load, `outage`, async () => {
      await acknowledgedMore(load, 10);
      const down = Date.now();
      await cluster.stop('fast');

      for (const protocol of ['grpc', 'connect'] as const) {
        const client = service.client(protocol, tenant.headers);
        for (let i = 0; i < 3; i++) {
          const started = Date.now();
          const outcome = await client.TaskService.getTask({ id: 1n }, { timeoutMs: 10_000 }).then(
            () => 'succeeded',
            (err: unknown) => codeOf(err),
          );
          expect(outcome).toBe('UNAVAILABLE');
          // Refused at once: far below the call's deadline and DB_CONNECTION_TIMEOUT_MS (5 s).
          expect(Date.now() - started).toBeLessThan(2_000);
        }
      }
      expect(await service.health()).toBe('NOT_SERVING');

      // Stay down (the load keeps failing meanwhile), then come back.
      await waitFor('the outage to last', () => Date.now() - down >= OUTAGE_MS, OUTAGE_MS + 5_000, 200);
      expect(await service.health()).toBe('NOT_SERVING');
      await cluster.start();
      const up = Date.now();
      await waitFor('health SERVING', async () => (await service.health()) === 'SERVING', 10_000);
      await acknowledgedMore(load, 10);
      const recovered = load.firstAckAfter(up)!;
      console.log(
        `outage: down ${up - down} ms; health SERVING and first acknowledged write ${recovered - up} ms after the server was back`,
      );
      expect(recovered - up).toBeLessThan(5_000);
    });
    await expectLoadIntact(cluster, DB, tenant, report);
    expect(service.crashes()).toEqual([]);
  });
});
