/**
 * `npm run bench`: throughput of the service's main calls, each reported as a ratio against
 * baselines measured in the same run on the same machine (absolute numbers on a shared
 * machine mean little; ratios travel):
 *   - rpc floor: a health check (its database probe is cached for a second) over the same
 *     protocol and client;
 *   - db floor: an empty tenant transaction (BEGIN, set_config, SELECT 1, COMMIT) on the pool.
 * It starts the service in process on a fresh database: BENCH_DATABASE_URL (a PostgreSQL
 * maintenance URL; a scratch database is created and dropped) or, with BENCH_DATABASE_URL=memory://,
 * embedded PGlite. BENCH_SECONDS (default 3) per measurement, BENCH_CONCURRENCY (default 8).
 */
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import pg from 'pg';
import { startApp } from '../src/app.js';
import { loadConfig } from '../src/config/index.js';
import { silentLogger } from '../src/logger.js';
import { type ApiClient, TaskView, WorkerType, connectClient, grpcClient } from '../test/helpers/clients.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const SERVER = process.env.BENCH_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/test';
const ADMIN = 'bench-admin-token-0123456789';

async function measure(name: string, fn: (i: number) => Promise<unknown>, concurrency = CONCURRENCY): Promise<number> {
  for (let i = 0; i < 20; i++) await fn(i); // warm-up
  let ops = 0;
  const until = Date.now() + SECONDS * 1000;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      for (let i = w; Date.now() < until; i += concurrency) {
        await fn(i);
        ops++;
      }
    }),
  );
  const rate = ops / (Number(process.hrtime.bigint() - started) / 1e9);
  console.log(`  ${name.padEnd(58)} ${rate.toFixed(0).padStart(7)} ops/s`);
  return rate;
}

async function main() {
  let url = SERVER;
  let dropDb: (() => Promise<void>) | undefined;
  if (!SERVER.startsWith('memory:')) {
    const name = `taskapi_bench_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: SERVER });
    await admin.connect();
    await admin.query(`create database ${name}`);
    await admin.end();
    const u = new URL(SERVER);
    u.pathname = `/${name}`;
    url = u.toString();
    dropDb = async () => {
      const c = new pg.Client({ connectionString: SERVER });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
    };
  }
  const config = loadConfig({
    DATABASE_URL: url,
    PORT: '0',
    HOST: '127.0.0.1',
    ADMIN_TOKEN: ADMIN,
    LOG_LEVEL: 'silent',
    DB_PREPARED_STATEMENTS: process.env.DB_PREPARED_STATEMENTS,
    DB_POOL_MAX: process.env.DB_POOL_MAX,
  });
  const app = await startApp(config, silentLogger);
  const clients: ApiClient[] = [];
  try {
    const admin = connectClient(app.port, { authorization: `Bearer ${ADMIN}` });
    const { tenant } = await admin.TenantService.createTenant({ name: 'Bench', subdomain: 'bench' });
    const { secret } = await admin.TenantService.createApiKey({ tenantId: tenant.id });
    const headers = { 'x-tenant-id': String(tenant.id), authorization: `Bearer ${secret}` };
    const setup = connectClient(app.port, headers);
    const { worker } = await setup.WorkerService.createWorker({ handle: '@bench', type: WorkerType.AGENT });
    const titles = Array.from({ length: 1000 }, (_, i) => `task ${i}`);
    const { project, tasks } = await setup.ProjectService.createProjectWithTasks({ name: 'bench', taskTitles: titles, createdById: worker.id });
    for (const t of tasks.slice(0, 50)) await setup.TaskService.assignTask({ id: t.id, workerId: worker.id });
    const tenantId = BigInt(tenant.id);

    console.log(
      `Task API benchmark: ${config.database.kind === 'pglite' ? 'embedded PGlite' : 'PostgreSQL'}, ${CONCURRENCY} concurrent callers, ` +
        `${SECONDS}s each, pool ${config.pool.max}, prepared statements ${config.pool.prepareStatements ? 'on' : 'off'}`,
    );
    const dbFloor = await measure('db floor: empty tenant transaction (select 1)', () =>
      app.database.db.withTenantTransaction(tenantId, (tx) => tx.one('select 1')),
    );
    const results: [string, number, number][] = [];
    for (const protocol of ['grpc', 'connect'] as const) {
      const c = protocol === 'grpc' ? grpcClient(app.port, headers) : connectClient(app.port, headers);
      clients.push(c);
      const health = protocol === 'grpc' ? grpcHealth(app.port) : connectHealth(app.port);
      console.log(`${protocol}:`);
      const rpcFloor = await measure('rpc floor: Health/Check (cached probe)', health);
      const run = async (name: string, fn: (i: number) => Promise<unknown>, concurrency?: number) => {
        results.push([`${protocol} ${name}`, await measure(name, fn, concurrency), rpcFloor]);
      };
      await run('GetTask (assignee + creator)', (i) => c.TaskService.getTask({ id: tasks[i % 50]!.id }));
      await run('GetTask TASK_VIEW_FULL', (i) => c.TaskService.getTask({ id: tasks[i % 50]!.id, view: TaskView.FULL }));
      await run('ListTasks page of 50 with relations', () => c.TaskService.listTasks({ projectId: project.id, pageSize: 50 }));
      await run('CreateTask', (i) => c.TaskService.createTask({ projectId: project.id, title: `new ${i}`, createdById: worker.id }));
      await run('UpdateTask (title)', (i) =>
        c.TaskService.updateTask({ task: { id: tasks[100 + (i % 100)]!.id, title: `renamed ${i}` }, updateMask: { paths: ['title'] } }),
      );
    }
    console.log('set-based writes:');
    const client = clients[0]!;
    const batch = Array.from({ length: 200 }, (_, i) => `batch ${i}`);
    const setBased = (await measure('CreateProjectWithTasks, 200 titles (calls/s)', async () => {
      await client.ProjectService.createProjectWithTasks({ name: 'b', taskTitles: batch, createdById: worker.id });
    }, 2)) * batch.length;
    console.log(`  ${'  = tasks/s'.padEnd(58)} ${setBased.toFixed(0).padStart(7)} tasks/s`);
    const oneByOne = await measure('CreateTask one by one (tasks/s)', (i) =>
      client.TaskService.createTask({ projectId: project.id, title: `single ${i}`, createdById: worker.id }), 2);

    console.log('\nratios (higher is better; each call against the floors of the same run):');
    for (const [name, rate, rpcFloor] of results) {
      console.log(`  ${name.padEnd(50)} ${(rate / rpcFloor).toFixed(2)} x rpc floor   ${(rate / dbFloor).toFixed(2)} x db floor`);
    }
    console.log(`  ${'tasks/s: set-based insert vs one CreateTask per title'.padEnd(50)} ${(setBased / oneByOne).toFixed(1)} x`);
  } finally {
    for (const c of clients) c.close();
    await app.stop();
    await dropDb?.();
  }
}

function connectHealth(port: number) {
  return async () => {
    const res = await fetch(`http://127.0.0.1:${port}/grpc.health.v1.Health/Check`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    await res.text();
  };
}

function grpcHealth(port: number) {
  // Reuses grpc-js with raw bytes: HealthCheckRequest {} is the empty message.
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return () =>
    new Promise<void>((resolve, reject) =>
      client.makeUnaryRequest('/grpc.health.v1.Health/Check', (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), (err) =>
        err ? reject(err) : resolve(),
      ),
    );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
