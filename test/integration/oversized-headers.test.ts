/**
 * One call with oversized headers, against the whole service: it alone is refused, the other
 * calls on its connection go on, and the in-flight count does not leak (a leak made the next
 * idle stop wait out its whole grace period).
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp, type TestTenant } from '../helpers/app.js';
import type { ApiClient } from '../helpers/clients.js';
import { Code, expectRpcError } from '../helpers/expect-rpc.js';

let t: TestApp;
let tenant: TestTenant;
let api: ApiClient;
const GRACE_MS = 20_000;
beforeAll(async () => {
  t = await startTestApp({ env: { SHUTDOWN_GRACE_MS: String(GRACE_MS), MAX_HEADER_BYTES: '16384' } });
  tenant = await t.tenant();
  api = t.client('grpc', tenant.headers);
});
afterAll(async () => {
  await t?.stop();
});

describe('oversized headers', () => {
  it('refuse that call alone with RESOURCE_EXHAUSTED, over the connection other calls use', async () => {
    const { project } = await api.ProjectService.createProject({ name: 'p' });
    const calls = Array.from({ length: 5 }, () => api.ProjectService.getProject({ id: project.id }));
    await expectRpcError(
      api.ProjectService.getProject({ id: project.id }, { headers: { 'x-big': 'x'.repeat(20_000) } }),
      Code.ResourceExhausted,
      'request headers are',
    );
    for (const res of await Promise.all(calls)) expect(res.project.id).toBe(project.id);
    expect((await api.ProjectService.getProject({ id: project.id })).project.name).toBe('p');
  });

  it('refuse it with 431 over HTTP/1.1', async () => {
    const res = await fetch(`http://127.0.0.1:${t.port}/taskapi.v1.ProjectService/ListProjects`, {
      method: 'POST',
      headers: { ...tenant.headers, 'content-type': 'application/json', 'x-big': 'x'.repeat(20_000) },
      body: '{}',
    });
    expect(res.status).toBe(431);
  });

  it('a header field nghttp2 cannot decode ends that connection, but leaks nothing: the next stop is immediate', async () => {
    // Over 64 KiB once HPACK-encoded: a COMPRESSION_ERROR for the whole connection (see
    // src/rpc/edge-limits.ts). The service must still count every call on it as ended.
    const client = new grpc.Client(`127.0.0.1:${t.port}`, grpc.credentials.createInsecure());
    // A health watch is a call that stays open on the same connection.
    const watch = client.makeServerStreamRequest(
      '/grpc.health.v1.Health/Watch',
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.alloc(0),
    );
    const watchEnded = new Promise<void>((resolve) => {
      watch.on('error', () => resolve());
      watch.on('end', () => resolve());
    });
    await new Promise((resolve) => watch.once('data', resolve));
    const metadata = new grpc.Metadata();
    metadata.set('x-huge', Buffer.alloc(150_000, 'q').toString());
    const code = await new Promise<number>((resolve) =>
      client.makeUnaryRequest(
        '/grpc.health.v1.Health/Check',
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.alloc(0),
        metadata,
        (err) => resolve(err?.code ?? grpc.status.OK),
      ),
    );
    await watchEnded;
    client.close();
    expect(code).not.toBe(grpc.status.OK);
    await expect(api.ProjectService.listProjects({})).resolves.toBeDefined();

    const started = Date.now();
    await t.app.stop();
    expect(Date.now() - started).toBeLessThan(3_000);
    await expectRpcError(api.ProjectService.listProjects({}), Code.Unavailable);
  });
});
