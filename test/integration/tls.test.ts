/**
 * TLS_CERT_FILE + TLS_KEY_FILE: gRPC, gRPC-Web and Connect (HTTP/1.1 and HTTP/2) over TLS on the
 * one port, with a self-signed certificate made for the test; the clients trust it as their CA.
 */
import http2 from 'node:http2';
import https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { grpcClient } from '../helpers/clients.js';
import { ADMIN_TOKEN } from '../helpers/env.js';
import { makeSelfSignedCertificate, type TestCertificate } from '../helpers/tls.js';

let certificate: TestCertificate;
let t: TestApp;
beforeAll(async () => {
  certificate = makeSelfSignedCertificate();
  t = await startTestApp({ env: { TLS_CERT_FILE: certificate.certFile, TLS_KEY_FILE: certificate.keyFile } });
});
afterAll(async () => {
  await t?.stop();
  certificate?.remove();
});

const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

/** One HTTP/1.1 request over TLS (https.request negotiates http/1.1). */
function httpsPost(path: string, headers: Record<string, string>, body: Buffer | string) {
  return new Promise<{ status: number; headers: Record<string, unknown>; body: Buffer; protocol: string }>(
    (resolve, reject) => {
      const req = https.request(
        {
          host: '127.0.0.1',
          port: t.port,
          path,
          method: 'POST',
          headers,
          ca: certificate.cert,
          servername: 'localhost',
          agent: false,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: Buffer.concat(chunks),
              protocol: `HTTP/${res.httpVersion}`,
            }),
          );
        },
      );
      req.on('error', reject);
      req.end(body);
    },
  );
}

describe('TLS', () => {
  it('serves gRPC to grpc-js trusting the CA', async () => {
    const client = grpcClient(t.port, admin, { ca: certificate.cert });
    try {
      const { tenant } = await client.TenantService.createTenant({ name: 'Over TLS', subdomain: 'overtls' });
      expect(tenant).toMatchObject({ name: 'Over TLS', subdomain: 'overtls' });
    } finally {
      client.close();
    }
  });

  it('serves Connect over HTTP/1.1 (ALPN http/1.1)', async () => {
    const res = await httpsPost(
      '/taskapi.v1.TenantService/ListTenants',
      { 'content-type': 'application/json', ...admin },
      '{}',
    );
    expect(res.protocol).toBe('HTTP/1.1');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body.toString()).tenants).toEqual(
      expect.arrayContaining([expect.objectContaining({ subdomain: 'overtls' })]),
    );
  });

  it('serves Connect over HTTP/2 (ALPN h2)', async () => {
    const session = http2.connect(`https://127.0.0.1:${t.port}`, { ca: certificate.cert, servername: 'localhost' });
    try {
      await new Promise((resolve, reject) => session.once('connect', resolve).once('error', reject));
      expect(session.alpnProtocol).toBe('h2');
      const body = await new Promise<string>((resolve, reject) => {
        const stream = session.request({
          ':method': 'POST',
          ':path': '/grpc.health.v1.Health/Check',
          'content-type': 'application/json',
        });
        let text = '';
        stream.on('data', (c: Buffer) => (text += c));
        stream.on('end', () => resolve(text));
        stream.on('error', reject);
        stream.end('{}');
      });
      expect(JSON.parse(body)).toEqual({ status: 'SERVING' });
    } finally {
      session.close();
    }
  });

  it('serves gRPC-Web over HTTP/1.1', async () => {
    const res = await httpsPost(
      '/grpc.health.v1.Health/Check',
      { 'content-type': 'application/grpc-web+proto' },
      Buffer.from([0, 0, 0, 0, 0]),
    );
    expect(res.status).toBe(200);
    // A message frame (status = SERVING: field 1, varint 1), then the trailer frame.
    expect([...res.body.subarray(0, 7)]).toEqual([0, 0, 0, 0, 2, 0x08, 0x01]);
    expect(res.body.subarray(12).toString()).toMatch(/grpc-status: ?0/);
  });

  it('does not answer cleartext on the TLS port', async () => {
    await expect(
      fetch(`http://127.0.0.1:${t.port}/grpc.health.v1.Health/Check`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      }),
    ).rejects.toThrow();
  });
});
