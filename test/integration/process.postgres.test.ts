/**
 * The service as a process, the way `npm start` runs it: configuration errors, start on the
 * embedded database, the pool surviving PostgreSQL killing its connections, and SIGTERM.
 * (Run once, in the postgres project.)
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { MIGRATIONS_DIR } from '../../src/db/migrate.js';
import { tenantHeaders } from '../helpers/app.js';
import { connectClient, grpcClient } from '../helpers/clients.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { ADMIN_TOKEN, TEST_DATABASE_URL } from '../helpers/env.js';
import { Code, expectRpcError } from '../helpers/expect-rpc.js';
import { healthStatus, ServingStatus } from '../helpers/health.js';
import { waitFor } from '../helpers/wait.js';

const ROOT = join(import.meta.dirname, '../..');
const children: ChildProcess[] = [];
const dirs: string[] = [];
const dbs: TestDatabase[] = [];

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  for (const d of dbs) await d.drop();
});

interface Run {
  child: ChildProcess;
  output: () => string;
  exit: Promise<number | null>;
}

function run(env: Record<string, string>): Run {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    // Only what the test gives: no DATABASE_URL or ADMIN_TOKEN from the outer environment.
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (b) => (out += b));
  child.stderr!.on('data', (b) => (out += b));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => out, exit };
}

/** The JSON log lines printed so far (anything else on the output is a bug of its own). */
function logLines(output: string): Array<Record<string, unknown>> {
  return output
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        return {};
      }
    });
}

// Generous: on a shared 2-core machine under load, starting (tsx, PGlite, migrations) took over 20 s.

/**
 * The port from the 'listening' log line. The bound is generous on purpose: a cold start
 * (tsx compiling, PGlite initialising its data directory) takes ~10 s on an idle 2-core machine
 * and several times that when the rest of the suite runs beside it. Nothing here asserts a time.
 */
async function waitForPort(r: Run, timeoutMs = 100_000): Promise<number> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const listening = logLines(r.output()).find((l) => l.msg === 'listening');
    if (listening) return Number(listening.port);
    if (r.child.exitCode !== null) throw new Error(`exited early:\n${r.output()}`);
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error(`not listening after ${timeoutMs} ms:\n${r.output()}`);
}

describe('bad configuration', () => {
  it('stops the start with one message naming every bad variable, no stack, no password', async () => {
    const r = run({ DATABASE_URL: 'sqlite:///tmp/x.db', PORT: '99999', DB_POOL_MAX: 'lots' });
    expect(await r.exit).not.toBe(0);
    const out = r.output();
    expect(out).toContain('DATABASE_URL');
    expect(out).toContain('PORT');
    expect(out).toContain('DB_POOL_MAX');
    expect(out).toContain('postgresql://');
    expect(out).not.toMatch(/\n\s+at /);
  });

  it('never prints the password of a rejected DATABASE_URL', async () => {
    const r = run({ DATABASE_URL: 'mysql://admin:hunter2secret@db.example.com/app', PORT: 'http' });
    expect(await r.exit).not.toBe(0);
    expect(r.output()).toContain('DATABASE_URL');
    expect(r.output()).not.toContain('hunter2secret');
  });
});

// Each test starts the service as a process: bounded by waitForPort, not by the default 60 s.
describe('running', { timeout: 240_000 }, () => {
  it('starts on the embedded database, answers SERVING, keeps npm run migrate off its data, and exits 0 on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'taskapi-embedded-'));
    dirs.push(dir);
    const databaseUrl = `pglite://${join(dir, 'pglite')}`;
    const r = run({ DATABASE_URL: databaseUrl, PORT: '0' });
    const port = await waitForPort(r);
    expect(await healthStatus('grpc', port)).toBe(ServingStatus.SERVING);

    const migrate = () =>
      promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/cli/migrate.ts', 'status'], {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', DATABASE_URL: databaseUrl },
      });
    const refused = await migrate().then(
      () => expect.fail('npm run migrate opened the data directory of a running service'),
      (err: { code: number; stderr: string }) => err,
    );
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`in use by process ${r.child.pid}`);

    r.child.kill('SIGTERM');
    expect(await r.exit).toBe(0);
    // The lock went with the service.
    expect((await migrate()).stdout).toContain('(up to date)');
  });

  it('survives PostgreSQL terminating every pool connection while idle, then serves the next call', async () => {
    const tdb = await createTestDatabase({ tenancy: 'row' });
    dbs.push(tdb);
    const r = run({ DATABASE_URL: tdb.url, PORT: '0', ADMIN_TOKEN, MIGRATE_ON_START: 'true' });
    const port = await waitForPort(r);
    const admin = connectClient(port, { authorization: `Bearer ${ADMIN_TOKEN}` });
    await Promise.all([0, 1, 2].map((i) => admin.TenantService.createTenant({ name: `T${i}`, subdomain: `kill${i}` })));

    const server = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await server.connect();
    const killed = await server.query(
      `select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and application_name = 'task-api'`,
      [new URL(tdb.url).pathname.slice(1)],
    );
    await server.end();
    expect(killed.rowCount).toBeGreaterThan(0);

    const { tenants } = await admin.TenantService.listTenants({});
    expect(tenants).toHaveLength(3);
    expect(await healthStatus('grpc', port)).toBe(ServingStatus.SERVING);
    expect(r.child.exitCode).toBeNull();
    r.child.kill('SIGTERM');
    expect(await r.exit).toBe(0);
  });
});

describe('logs and metrics', { timeout: 120_000 }, () => {
  it('one JSON line per call with its fields, nothing but JSON on stderr under 30 concurrent calls, no secret, and /metrics', async () => {
    const tdb = await createTestDatabase({ tenancy: 'row' });
    dbs.push(tdb);
    const r = run({ DATABASE_URL: tdb.url, PORT: '0', ADMIN_TOKEN });
    const port = await waitForPort(r);
    const admin = connectClient(port, { authorization: `Bearer ${ADMIN_TOKEN}` });
    const { tenant } = await admin.TenantService.createTenant({ name: 'Logs', subdomain: 'logs' });
    const { secret } = await admin.TenantService.createApiKey({ tenantId: tenant.id });
    const api = connectClient(port, tenantHeaders(tenant.id, secret));
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    // More calls in flight than Node's default listener limit (10): the shutdown signal used to
    // collect one listener per call and print a MaxListenersExceededWarning as plain text.
    await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        api.ProjectService.createProject(
          { name: `p${i}` },
          { headers: { 'x-request-id': `req-${i}`, traceparent: `00-${traceId}-00f067aa0ba902b7-01` } },
        ),
      ),
    );
    await expectRpcError(
      api.ProjectService.getProject({ id: 999999n }, { headers: { 'x-request-id': 'req-missing' } }),
      Code.NotFound,
    );
    const grpc = grpcClient(port, tenantHeaders(tenant.id, secret));
    const { project } = await grpc.ProjectService.createProject(
      { name: 'over h2' },
      { headers: { 'x-request-id': 'req-grpc' } },
    );
    grpc.close();
    const calls = () => logLines(r.output()).filter((l) => l.msg === 'call');
    await waitFor(() => calls().some((l) => l.requestId === 'req-grpc'), 'the call line of the gRPC call');

    const line = calls().find((l) => l.requestId === 'req-7');
    expect(line).toMatchObject({
      level: 'info',
      service: 'taskapi.v1.ProjectService',
      method: 'CreateProject',
      code: 'OK',
      tenantId: String(tenant.id),
      traceId,
      protocol: 'http/1.1',
    });
    expect(line!.durationMs).toBeGreaterThan(0);
    expect(line!.bytesIn).toBeGreaterThan(0);
    expect(line!.bytesOut).toBeGreaterThan(0);
    expect(line!.statements).toBeGreaterThanOrEqual(3);
    expect(line!.peer).toMatch(/^(::ffff:)?127\.0\.0\.1:\d+$/);
    expect(calls().filter((l) => /^req-\d+$/.test(String(l.requestId)))).toHaveLength(30);
    expect(calls().find((l) => l.requestId === 'req-missing')).toMatchObject({
      code: 'NotFound',
      error: 'project not found',
    });
    const overH2 = calls().find((l) => l.requestId === 'req-grpc');
    expect(overH2).toMatchObject({ method: 'CreateProject', code: 'OK', protocol: 'h2', tenantId: String(tenant.id) });
    // The request body: a 5-byte gRPC frame header and the message, which holds the name.
    expect(overH2!.bytesIn).toBeGreaterThan(5 + 'over h2'.length);
    expect(overH2!.bytesOut).toBeGreaterThan(5 + project.name.length);

    // 30 over Connect, 1 over gRPC
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(
      /taskapi_rpc_calls_total\{service="taskapi.v1.ProjectService",method="CreateProject",code="OK"\} 31/,
    );
    expect(metrics).toMatch(
      /taskapi_rpc_calls_total\{service="taskapi.v1.ProjectService",method="GetProject",code="NotFound"\} 1/,
    );
    expect(metrics).toMatch(
      /taskapi_rpc_duration_seconds_count\{service="taskapi.v1.ProjectService",method="CreateProject"\} 31/,
    );
    expect(metrics).toMatch(/taskapi_db_pool_connections\{state="max"\} 10/);
    expect(metrics).toMatch(/taskapi_open_connections [1-9]/);
    expect(metrics).toContain('process_cpu_seconds_total');

    r.child.kill('SIGTERM');
    expect(await r.exit).toBe(0);
    const out = r.output();
    for (const l of out.split('\n').filter((x) => x.trim() !== '')) expect(() => JSON.parse(l), l).not.toThrow();
    // Lines are written in batches: the last ones still reach stderr before the process exits.
    expect(logLines(out).at(-1)?.msg).toBe('stopped');
    expect(out).not.toContain('MaxListenersExceededWarning');
    expect(out).not.toContain(secret);
    expect(out).not.toContain(ADMIN_TOKEN);
  });
});

describe('tools from outside', { timeout: 240_000 }, () => {
  const exec = promisify(execFile);
  const env = (extra: Record<string, string>) => ({
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    ...extra,
  });

  it('npm run migrate -- status | up | down manages the schema by hand', async () => {
    const tdb = await createTestDatabase({ migrated: false, tenancy: 'row' });
    dbs.push(tdb);
    const migrate = (...args: string[]) =>
      exec(process.execPath, ['--import', 'tsx', 'src/cli/migrate.ts', ...args], {
        cwd: ROOT,
        env: env({ DATABASE_URL: tdb.url }),
      });
    const before = await migrate('status');
    expect(before.stdout).toMatch(/pending\s+1764000000000_tenants/);
    expect(before.stdout).not.toMatch(/applied\s/);
    // The newest migration is the last applied and the one a step down reverts.
    const last = readdirSync(join(MIGRATIONS_DIR, 'tenant'))
      .sort()
      .at(-1)!
      .replace(/\.sql$/, '');
    expect((await migrate('up')).stdout).toMatch(new RegExp(`applied\\s+${last}\\n`));
    expect((await migrate('status')).stdout).toContain('(up to date)');
    expect((await migrate('down')).stdout).toMatch(new RegExp(`reverted\\s+${last}`));
    expect((await migrate('status')).stdout).toMatch(new RegExp(`pending\\s+${last}`));
    await expect(migrate('sideways')).rejects.toMatchObject({ code: 2 });
  });

  it('buf curl lists and calls the API through server reflection, without .proto files', async () => {
    const tdb = await createTestDatabase({ tenancy: 'row' });
    dbs.push(tdb);
    const r = run({ DATABASE_URL: tdb.url, PORT: '0', ADMIN_TOKEN });
    const port = await waitForPort(r);
    const buf = join(ROOT, 'node_modules/.bin/buf');
    const base = ['curl', '--protocol', 'grpc', '--http2-prior-knowledge'];
    const listed = await exec(buf, [...base, '--list-methods', `http://127.0.0.1:${port}`], { env: env({}) });
    expect(listed.stdout).toContain('taskapi.v1.TaskService/GetTask');
    expect(listed.stdout).toContain('taskapi.v1.TenantService/CreateTenant');
    // The older reflection package, which grpcurl and other older clients ask for.
    const alpha = await exec(
      buf,
      [...base, '--reflect-protocol', 'grpc-v1alpha', '--list-methods', `http://127.0.0.1:${port}`],
      { env: env({}) },
    );
    expect(alpha.stdout).toContain('taskapi.v1.ProjectService/CreateProjectWithTasks');
    const created = await exec(
      buf,
      [
        ...base,
        '-H',
        `authorization: Bearer ${ADMIN_TOKEN}`,
        '-d',
        '{"name":"Via buf","subdomain":"viabuf"}',
        `http://127.0.0.1:${port}/taskapi.v1.TenantService/CreateTenant`,
      ],
      { env: env({}) },
    );
    expect(JSON.parse(created.stdout).tenant).toMatchObject({ name: 'Via buf', subdomain: 'viabuf' });
    r.child.kill('SIGTERM');
    expect(await r.exit).toBe(0);
  });
});
