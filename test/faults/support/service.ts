/**
 * The service as a real child process (`node --import tsx src/main.ts`, the way `npm start`
 * runs it, so signals reach it), with real clients, and a tenant to load it with.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConnectError } from '@connectrpc/connect';
import * as grpc from '@grpc/grpc-js';
import { tenantHeaders } from '../../helpers/app.js';
import { type ApiClient, connectClient, grpcClient, WorkerType } from '../../helpers/clients.js';
import { forget, killOnExit, waitFor } from './processes.js';

const ROOT = join(import.meta.dirname, '../../..');
export const ADMIN_TOKEN = 'faults-admin-token-0123456789';

export interface ServiceTenant {
  readonly id: bigint;
  readonly headers: Record<string, string>;
  readonly workerId: bigint;
  readonly projectId: bigint;
}

export class ServiceProcess {
  private output = '';
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private clients: ApiClient[] = [];
  private stopping = false;

  private constructor(
    readonly child: ChildProcess,
    private portNumber = 0,
  ) {
    child.stdout!.on('data', (b) => (this.output += b));
    child.stderr!.on('data', (b) => (this.output += b));
    this.exit = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    // A service that dies on its own is the finding: show why, where CI logs can be read.
    void this.exit.then(({ code, signal }) => {
      if (!this.stopping) {
        console.error(
          `the service exited unexpectedly (code ${code}, signal ${signal}); its last log lines:\n${this.output.split('\n').slice(-40).join('\n')}`,
        );
      }
    });
    void this.exit.then(() => child.pid && forget(child.pid));
  }

  /** Starts the service on `databaseUrl` (migrating it) and waits until it listens. */
  static async start(databaseUrl: string, env: Record<string, string> = {}): Promise<ServiceProcess> {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: ROOT,
      // Only what the test gives: nothing from the outer environment reaches the service.
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '',
        DATABASE_URL: databaseUrl,
        PORT: '0',
        HOST: '127.0.0.1',
        ADMIN_TOKEN,
        LOG_LEVEL: 'info',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (child.pid) {
      killOnExit(child.pid);
      // For the global teardown, should this worker die before it could kill the service.
      const root = process.env.TASKAPI_FAULTS_TMP;
      if (root) writeFileSync(join(root, `service-${child.pid}.pid`), `${child.pid}\n`);
    }
    const service = new ServiceProcess(child);
    service.portNumber = await waitFor(
      'the service to listen',
      () => {
        if (child.exitCode !== null) throw new Error(`the service exited early:\n${service.output}`);
        const m = /"port":(\d+)[^\n]*"msg":"listening"/.exec(service.output);
        return m ? Number(m[1]) : undefined;
      },
      30_000,
    );
    return service;
  }

  get port(): number {
    return this.portNumber;
  }

  /** Everything the service logged. */
  get log(): string {
    return this.output;
  }

  /** Log lines of errors that escaped every handler (the process survived them, but they are bugs). */
  crashes(): string[] {
    return this.output.split('\n').filter((line) => /"msg":"(uncaught exception|unhandled rejection)"/.test(line));
  }

  /**
   * A typed client. Over Connect a call's deadline is only sent: the client waits for the
   * server to end the call, so that what a test sees at a deadline is the service's doing.
   */
  client(protocol: 'grpc' | 'connect', headers: Record<string, string> = {}): ApiClient {
    const c =
      protocol === 'grpc' ? grpcClient(this.port, headers) : connectClient(this.port, headers, { deadlines: 'server' });
    this.clients.push(c);
    return c;
  }

  /** grpc.health.v1 status over Connect JSON, or the error code; bounded by `timeoutMs`. */
  async health(timeoutMs = 3_000): Promise<string> {
    try {
      const res = await fetch(`http://127.0.0.1:${this.port}/grpc.health.v1.Health/Check`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'connect-timeout-ms': String(timeoutMs) },
        body: '{}',
        // The server should answer by the deadline on its own; this only keeps a hung server from hanging the test.
        signal: AbortSignal.timeout(timeoutMs + 5_000),
      });
      const body = (await res.json()) as { status?: string; code?: string };
      // A Connect error code is snake_case (`deadline_exceeded`); name it as gRPC does.
      return body.status ?? body.code?.toUpperCase() ?? `HTTP ${res.status}`;
    } catch (err) {
      return `no answer: ${(err as Error).message}`;
    }
  }

  /** A tenant with an API key, a worker and a project to write tasks into. */
  async tenant(name: string): Promise<ServiceTenant> {
    const admin = this.client('connect', { authorization: `Bearer ${ADMIN_TOKEN}` });
    const { tenant } = await admin.TenantService.createTenant({ name, subdomain: name });
    const { secret } = await admin.TenantService.createApiKey({ tenantId: tenant.id, name: 'faults' });
    const headers = tenantHeaders(tenant.id, secret);
    const c = this.client('connect', headers);
    const { worker } = await c.WorkerService.createWorker({ handle: '@loader', type: WorkerType.AGENT });
    const { project } = await c.ProjectService.createProject({ name: 'load' });
    return { id: tenant.id, headers, workerId: worker.id, projectId: project.id };
  }

  /** SIGTERM (or another signal), then the exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.stopping = true;
    for (const c of this.clients) c.close();
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exit;
  }

  /** Signals the process; its exit is expected from now on. */
  signal(signal: NodeJS.Signals): void {
    this.stopping = true;
    this.child.kill(signal);
  }

  kill(): void {
    this.stopping = true;
    for (const c of this.clients) c.close();
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

/**
 * The gRPC status name of a failed call (UNAVAILABLE, DEADLINE_EXCEEDED, ...; Code's numbers are
 * gRPC's), as the outcomes of these suites are logged and compared; anything that is not a
 * ConnectError is reported as such.
 */
export function codeOf(err: unknown): string {
  return err instanceof ConnectError
    ? grpc.status[err.code as number as grpc.status]
    : `not an RPC error: ${String(err)}`;
}
