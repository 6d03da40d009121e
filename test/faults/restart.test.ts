/**
 * PostgreSQL restarted (fast, then immediate: a crash and WAL recovery) under eight idempotent
 * write loops. Every failed call is UNAVAILABLE, every acknowledged write is in the database
 * exactly once with its history event, and the service serves again promptly.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acknowledgedMore, expectLoadIntact, underLoad, WriteLoad } from './support/load.js';
import { PostgresCluster } from './support/postgres-cluster.js';
import { ServiceProcess } from './support/service.js';

let cluster: PostgresCluster;
let service: ServiceProcess;

beforeAll(async () => {
  cluster = await PostgresCluster.create();
  await cluster.query('create database taskapi');
  service = await ServiceProcess.start(cluster.url('taskapi'), { DB_POOL_MAX: '8', DB_CONNECTION_TIMEOUT_MS: '2000' });
});

afterAll(async () => {
  service?.kill();
  cluster?.destroy();
});

describe.each(['fast', 'immediate'] as const)('PostgreSQL restart (%s) under write load', (mode) => {
  it('fails calls only with UNAVAILABLE, keeps every acknowledged write, and recovers', async () => {
    const tenant = await service.tenant(`restart${mode}`);
    const load = new WriteLoad(service, tenant, 8, mode);
    const report = await underLoad(load, `restart ${mode}`, async () => {
      await acknowledgedMore(load, 40);
      const before = load.acknowledgedCount;
      const down = Date.now();
      await cluster.restart(mode);
      const up = Date.now();
      await acknowledgedMore(load, 40);
      const recovered = load.firstAckAfter(up)!;
      console.log(
        `restart ${mode}: server down for ${up - down} ms; first acknowledged write ${recovered - up} ms after it was back ` +
          `(${before} writes before the restart)`,
      );
      // A pool stuck on dead connections would take DB_CONNECTION_TIMEOUT_MS or longer.
      expect(recovered - up).toBeLessThan(5_000);
    });
    await expectLoadIntact(cluster, 'taskapi', tenant, report);
    expect(await service.health()).toBe('SERVING');
    expect(service.crashes()).toEqual([]);
  });
});
