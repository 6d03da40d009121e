import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Health } from '../../src/gen/grpc/health/v1/health_pb.js';
import { PROTOCOLS, startTestApp, type TestApp } from '../helpers/app.js';
import { serviceClient } from '../helpers/clients.js';
import { Code, expectRpcError } from '../helpers/expect-rpc.js';
import { healthStatus, ServingStatus } from '../helpers/health.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

describe.each(PROTOCOLS)('health over %s (one port for HTTP/2 and HTTP/1.1)', (protocol) => {
  it('answers SERVING for the server', async () => {
    expect(await healthStatus(protocol, t.port)).toBe(ServingStatus.SERVING);
  });

  it('knows the API services by name and refuses unknown ones', async () => {
    expect(await healthStatus(protocol, t.port, 'taskapi.v1.TaskService')).toBe(ServingStatus.SERVING);
    await expectRpcError(healthStatus(protocol, t.port, 'nope.Service'), Code.NotFound);
  });

  it('streams the status (Health.Watch, server streaming) until the client cancels', async () => {
    // Also the path a test of any server-streaming RPC takes through the typed clients.
    const client = serviceClient(protocol, t.port, Health);
    const controller = new AbortController();
    const statuses: ServingStatus[] = [];
    try {
      const stream = client.watch({ service: '' }, { signal: controller.signal });
      await expectRpcError(
        (async () => {
          for await (const { status } of stream) {
            statuses.push(status);
            controller.abort();
          }
        })(),
        Code.Canceled,
      );
    } finally {
      client.close();
    }
    expect(statuses).toEqual([ServingStatus.SERVING]);
  });
});
