/**
 * Calls below the typed clients, for what they cannot send: malformed bodies, arbitrary content
 * types, a Host header or :authority of the test's choosing, oversized headers.
 */
import http from 'node:http';
import { create, type DescMessage, type MessageInitShape, toBinary } from '@bufbuild/protobuf';
import { ConnectError } from '@connectrpc/connect';
import { codeFromString } from '@connectrpc/connect/protocol-connect';
import * as grpc from '@grpc/grpc-js';
import type { ApiClient } from './clients.js';

/** The binary encoding of a request message. */
export const encode = <D extends DescMessage>(schema: D, init?: MessageInitShape<D>): Buffer =>
  Buffer.from(toBinary(schema, create(schema, init)));

export type RawGrpcResult = { ok: true; body: Buffer } | { ok: false; code: grpc.status; details: string };

/** A unary gRPC call with raw bytes in and out, through grpc-js, with channel options. */
export function rawGrpc(
  port: number,
  path: string,
  body: Buffer,
  headers: Record<string, string>,
  channelOptions: grpc.ChannelOptions = {},
): Promise<RawGrpcResult> {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), channelOptions);
  const metadata = new grpc.Metadata();
  for (const [k, v] of Object.entries(headers)) metadata.set(k, v);
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      body,
      metadata,
      { deadline: Date.now() + 10_000 },
      (err, res) => {
        client.close();
        if (err) resolve({ ok: false, code: err.code, details: err.details });
        else resolve({ ok: true, body: res! });
      },
    );
  });
}

export interface RawConnectResult {
  status: number;
  contentType: string;
  body: Buffer;
}

/** A Connect unary call over HTTP/1.1 with any body and any content type. */
export async function rawConnect(
  port: number,
  path: string,
  body: string | Uint8Array,
  headers: Record<string, string>,
): Promise<RawConnectResult> {
  const res = await fetch(`http://127.0.0.1:${port}/${path}`, {
    method: 'POST',
    headers: { 'connect-protocol-version': '1', ...headers },
    body,
  });
  return {
    status: res.status,
    contentType: res.headers.get('content-type') ?? '',
    body: Buffer.from(await res.arrayBuffer()),
  };
}

/** The code name of a Connect error response (its body is JSON whatever the codec). */
export function connectErrorCode(res: RawConnectResult): string {
  if (res.status < 400) throw new Error(`expected an error, got HTTP ${res.status}`);
  return (JSON.parse(res.body.toString('utf8')) as { code: string }).code;
}

/**
 * A Connect JSON call over node:http, which (unlike fetch) sends the Host header it is given:
 * the tenant subdomain. Resolves to the JSON response; fails with a ConnectError.
 */
export function connectWithHost(
  port: number,
  host: string,
  headers: Record<string, string>,
  path: string,
  request: unknown,
): Promise<unknown> {
  const body = JSON.stringify(request);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: `/${path}`,
        headers: {
          ...headers,
          host,
          'content-type': 'application/json',
          'connect-protocol-version': '1',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          if (res.statusCode === 200) resolve(json);
          else reject(new ConnectError(json.message ?? '', codeFromString(json.code)));
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** The server still answers tenant calls on every client given. */
export async function expectServing(clients: ApiClient[]): Promise<void> {
  for (const c of clients) await c.WorkerService.listWorkers({});
}
