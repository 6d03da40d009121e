/** A running service on a test database, listening on a free port, with real clients. */
import { type App, startApp } from '../../src/app.js';
import { WorkerType } from '../../src/gen/taskapi/v1/resources_pb.js';
import { type Logger, silentLogger } from '../../src/logger.js';
import { type ApiClient, connectClient, grpcClient } from './clients.js';
import { createTestDatabase, type TestDatabase } from './database.js';
import { ADMIN_TOKEN } from './env.js';

export interface TestApp {
  readonly app: App;
  readonly db: TestDatabase;
  readonly port: number;
  readonly adminToken: string;
  /** A client of the given protocol with these headers on every call. */
  client(protocol: Protocol, headers?: Record<string, string>): ApiClient;
  /** A new tenant with an API key (optionally bound to a new worker). */
  tenant<W extends boolean = false>(options?: { subdomain?: string; withWorker?: W }): Promise<TestTenant<W>>;
  stop(): Promise<void>;
}

export type Protocol = 'grpc' | 'connect';
export const PROTOCOLS: Protocol[] = ['grpc', 'connect'];

export interface TestTenant<WithWorker extends boolean = boolean> {
  readonly id: bigint;
  readonly subdomain: string;
  readonly apiKey: string;
  readonly apiKeyId: bigint;
  /** Headers that authenticate as this tenant. */
  readonly headers: Record<string, string>;
  /** The worker the key is bound to, when asked for. */
  readonly workerId: WithWorker extends true ? bigint : null;
}

let counter = 0;

export async function startTestApp(
  options: { env?: Record<string, string>; db?: TestDatabase; logger?: Logger } = {},
): Promise<TestApp> {
  const db = options.db ?? (await createTestDatabase());
  const app = await startApp(db.config(options.env), options.logger ?? silentLogger);
  const clients: ApiClient[] = [];
  const client = (protocol: Protocol, headers: Record<string, string> = {}) => {
    const c = protocol === 'grpc' ? grpcClient(app.port, headers) : connectClient(app.port, headers);
    clients.push(c);
    return c;
  };
  const admin = client('connect', { authorization: `Bearer ${ADMIN_TOKEN}` });
  return {
    app,
    db,
    port: app.port,
    adminToken: ADMIN_TOKEN,
    client,
    async tenant<W extends boolean = false>(opts: { subdomain?: string; withWorker?: W } = {}) {
      const subdomain = opts.subdomain ?? `t${process.pid}x${++counter}x${Date.now().toString(36)}`;
      const { tenant } = await admin.TenantService.createTenant({ name: `Tenant ${subdomain}`, subdomain });
      let workerId: bigint | null = null;
      let key = await admin.TenantService.createApiKey({ tenantId: tenant.id, name: 'test' });
      if (opts.withWorker) {
        const headers = tenantHeaders(tenant.id, key.secret);
        const { worker } = await client('connect', headers).WorkerService.createWorker({
          handle: '@owner',
          type: WorkerType.AGENT,
        });
        workerId = worker.id;
        key = await admin.TenantService.createApiKey({ tenantId: tenant.id, workerId, name: 'worker key' });
      }
      return {
        id: tenant.id,
        subdomain,
        apiKey: key.secret,
        apiKeyId: key.apiKeyId,
        headers: tenantHeaders(tenant.id, key.secret),
        workerId: workerId as W extends true ? bigint : null,
      };
    },
    async stop() {
      for (const c of clients) c.close();
      await app.stop();
      await db.drop();
    },
  };
}

/** Headers that authenticate as tenant `id` with API key `secret`. */
export const tenantHeaders = (id: bigint | string, secret: string): Record<string, string> => ({
  'x-tenant-id': String(id),
  authorization: `Bearer ${secret}`,
});
