import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { type TestApp, startTestApp } from '../helpers/app.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

function grpcHealth(port: number, service = ''): Promise<number> {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    // grpc.health.v1.HealthCheckRequest { service = 1 } / HealthCheckResponse { status = 1 }, hand-encoded.
    const body = Buffer.concat([Buffer.from([0x0a, service.length]), Buffer.from(service)]);
    client.makeUnaryRequest(
      '/grpc.health.v1.Health/Check',
      (b: Buffer) => b,
      (b: Buffer) => b,
      service ? body : Buffer.alloc(0),
      (err, res) => {
        client.close();
        if (err) reject(err);
        else resolve(res && res.length >= 2 ? res[1]! : 0);
      },
    );
  });
}

describe('health', () => {
  it('answers SERVING over gRPC (HTTP/2) and Connect (HTTP/1.1) on the same port', async () => {
    expect(await grpcHealth(t.port)).toBe(1);
    const res = await fetch(`http://127.0.0.1:${t.port}/grpc.health.v1.Health/Check`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(await res.json()).toEqual({ status: 'SERVING' });
  });

  it('knows the API services by name and refuses unknown ones', async () => {
    expect(await grpcHealth(t.port, 'taskapi.v1.TaskService')).toBe(1);
    await expect(grpcHealth(t.port, 'nope.Service')).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });
});
