/**
 * Every protocol a client may speak, on the one port: unary gRPC and Connect calls take the
 * direct path (src/rpc/direct-handler.ts); gRPC-Web, compressed gRPC and streaming go through
 * connect-node. Each must give the same answers, codes and headers.
 */
import { Code, ConnectError, createClient, type Transport } from '@connectrpc/connect';
import {
  compressionGzip,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Health } from '../../src/gen/grpc/health/v1/health_pb.js';
import { ProjectService } from '../../src/gen/taskapi/v1/project_pb.js';
import { startTestApp, type TestApp, type TestTenant } from '../helpers/app.js';

let t: TestApp;
let tenant: TestTenant;

beforeAll(async () => {
  t = await startTestApp();
  tenant = await t.tenant();
});
afterAll(() => t.stop());

const TRANSPORTS: Record<string, (baseUrl: string) => Transport> = {
  'Connect JSON, HTTP/1.1': (baseUrl) => createConnectTransport({ baseUrl, httpVersion: '1.1' }),
  'Connect binary, HTTP/1.1': (baseUrl) =>
    createConnectTransport({ baseUrl, httpVersion: '1.1', useBinaryFormat: true }),
  'Connect JSON, HTTP/2': (baseUrl) => createConnectTransport({ baseUrl, httpVersion: '2' }),
  'Connect binary, HTTP/2': (baseUrl) => createConnectTransport({ baseUrl, httpVersion: '2', useBinaryFormat: true }),
  'Connect JSON, gzip request (connect-node)': (baseUrl) =>
    createConnectTransport({ baseUrl, httpVersion: '1.1', sendCompression: compressionGzip, compressMinBytes: 1 }),
  'gRPC, HTTP/2': (baseUrl) => createGrpcTransport({ baseUrl }),
  'gRPC, gzip request (connect-node)': (baseUrl) =>
    createGrpcTransport({ baseUrl, sendCompression: compressionGzip, compressMinBytes: 1 }),
  'gRPC-Web, HTTP/1.1 (connect-node)': (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: '1.1' }),
  'gRPC-Web, HTTP/2 (connect-node)': (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: '2' }),
};

describe.each(Object.entries(TRANSPORTS))('%s', (_, make) => {
  const projects = () => createClient(ProjectService, make(`http://127.0.0.1:${t.port}`));

  it('creates and reads back, and answers with a request id', async () => {
    let requestId: string | null = null;
    const created = await projects().createProject(
      { name: 'over the wire', metadata: { a: 1 } },
      { headers: tenant.headers },
    );
    const got = await projects().getProject(
      { id: created.project!.id },
      {
        headers: { ...tenant.headers, 'x-request-id': 'req-123' },
        onHeader: (h) => (requestId = h.get('x-request-id')),
      },
    );
    expect(got.project?.name).toBe('over the wire');
    expect(got.project?.metadata).toEqual({ a: 1 });
    expect(requestId).toBe('req-123');
  });

  it('gives the service error code and message, with the request id in the metadata', async () => {
    const err = await projects()
      .getProject({ id: 9_000_000_001n }, { headers: tenant.headers })
      .catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.NotFound);
    expect((err as ConnectError).rawMessage).toBe('project not found');
    expect((err as ConnectError).metadata.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('checks the key before anything else: a missing key is UNAUTHENTICATED', async () => {
    const err = await projects()
      .getProject({ id: 1n }, { headers: { 'x-tenant-id': tenant.id } })
      .then(
        () => null,
        (e: unknown) => ConnectError.from(e),
      );
    expect(err?.code).toBe(Code.Unauthenticated);
  });

  it('serves the health check without credentials', async () => {
    const health = createClient(Health, make(`http://127.0.0.1:${t.port}`));
    expect((await health.check({ service: '' })).status).toBe(1);
  });
});

describe('the direct path', () => {
  it('adds no listener per call to a shared signal: 40 concurrent calls raise no process warning', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      for (const transport of [
        createGrpcTransport({ baseUrl: `http://127.0.0.1:${t.port}` }),
        createConnectTransport({ baseUrl: `http://127.0.0.1:${t.port}`, httpVersion: '1.1' }),
      ]) {
        const client = createClient(ProjectService, transport);
        await Promise.all(
          Array.from({ length: 40 }, () => client.listProjects({ pageSize: 1 }, { headers: tenant.headers })),
        );
      }
      // Warnings are emitted on the next tick.
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings.map((w) => w.message)).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('answers INVALID_ARGUMENT for a body that is not a message, on both protocols', async () => {
    const base = `http://127.0.0.1:${t.port}/taskapi.v1.ProjectService/GetProject`;
    const json = await fetch(base, {
      method: 'POST',
      headers: { ...tenant.headers, 'content-type': 'application/json' },
      body: '{"id":',
    });
    expect(json.status).toBe(400);
    expect(((await json.json()) as { code: string }).code).toBe('invalid_argument');
    const proto = await fetch(base, {
      method: 'POST',
      headers: { ...tenant.headers, 'content-type': 'application/proto' },
      body: new Uint8Array([0xff, 0xff, 0xff]),
    });
    expect(proto.status).toBe(400);
    expect(((await proto.json()) as { message: string }).message).toMatch(/^request: the message cannot be decoded/);
  });

  it('leaves unknown methods to connect-node, which answers UNIMPLEMENTED', async () => {
    const res = await fetch(`http://127.0.0.1:${t.port}/taskapi.v1.ProjectService/NoSuchMethod`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.status).toBe(404);
  });
});
