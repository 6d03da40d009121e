/**
 * RPC clients of the load generator, one calling convention for every protocol:
 * - grpc: @grpc/grpc-js, messages (de)serialized with protobuf-es toBinary/fromBinary from the
 *   generated descriptors in src/gen (no .proto loading at run time);
 * - connect: @connectrpc/connect-node's Connect transport, JSON or binary, HTTP/1.1 or HTTP/2;
 * - plain JSON: the Connect protocol's unary JSON call written by hand on Node's `http` client
 *   (a POST of the message's JSON, the answer's JSON read back with protobuf-es `fromJson`), as an
 *   orchestrator without connect-es calls the service. A diagnostic beside connect-node's JSON
 *   client: the same server path, a client without connect-node's per-call machinery.
 * Every client speaks to one server over one connection pool for the whole run.
 */
import http from 'node:http';
import {
  create,
  type DescMethodServerStreaming,
  type DescMethodUnary,
  fromBinary,
  fromJson,
  toBinary,
  toJsonString,
} from '@bufbuild/protobuf';
import type { Transport } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import * as grpc from '@grpc/grpc-js';
import type { TenantData } from './data.js';

export interface RpcClient {
  call(
    method: DescMethodUnary,
    request: Record<string, unknown>,
    tenant: TenantData | null,
    extraHeaders?: Record<string, string>,
    // biome-ignore lint/suspicious/noExplicitAny: the response of whichever method was called
  ): Promise<any>;
  close(): void;
}

const DEADLINE_MS = 30_000;

function tenantHeaders(tenant: TenantData | null, extra: Record<string, string> = {}): Record<string, string> {
  return tenant ? { 'x-tenant-id': tenant.id, authorization: `Bearer ${tenant.key}`, ...extra } : extra;
}

export function grpcClient(port: number): RpcClient {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
    // The service allows responses far beyond grpc-js's default 4 MiB; no scenario should trip it.
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
  });
  return {
    call(method, request, tenant, extraHeaders) {
      const metadata = new grpc.Metadata();
      for (const [k, v] of Object.entries(tenantHeaders(tenant, extraHeaders))) metadata.set(k, v);
      const message = create(method.input, request as never);
      return new Promise((resolve, reject) => {
        client.makeUnaryRequest(
          `/${method.parent.typeName}/${method.name}`,
          (m: typeof message) => Buffer.from(toBinary(method.input, m)),
          (b: Buffer) => fromBinary(method.output, b),
          message,
          metadata,
          { deadline: Date.now() + DEADLINE_MS },
          (err, res) => (err ? reject(new Error(`${grpc.status[err.code]}: ${err.details}`)) : resolve(res)),
        );
      });
    },
    close: () => client.close(),
  };
}

export function connectClient(port: number, options: { httpVersion: '1.1' | '2'; binary: boolean }): RpcClient {
  const transport: Transport = createConnectTransport({
    baseUrl: `http://127.0.0.1:${port}`,
    httpVersion: options.httpVersion,
    useBinaryFormat: options.binary,
    readMaxBytes: 64 * 1024 * 1024,
  });
  return {
    async call(method, request, tenant, extraHeaders) {
      const res = await transport.unary(
        method,
        undefined,
        DEADLINE_MS,
        tenantHeaders(tenant, extraHeaders),
        request as never,
      );
      return res.message;
    },
    close() {},
  };
}

export function plainJsonClient(port: number): RpcClient {
  const agent = new http.Agent({ keepAlive: true });
  return {
    call(method, request, tenant, extraHeaders) {
      const body = toJsonString(method.input, create(method.input, request as never));
      return new Promise((resolve, reject) => {
        const req = http.request(
          {
            host: '127.0.0.1',
            port,
            method: 'POST',
            path: `/${method.parent.typeName}/${method.name}`,
            agent,
            headers: {
              'content-type': 'application/json',
              'connect-protocol-version': '1',
              'connect-timeout-ms': String(DEADLINE_MS),
              'content-length': Buffer.byteLength(body),
              ...tenantHeaders(tenant, extraHeaders),
            },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (chunk: Buffer) => chunks.push(chunk));
            res.on('error', reject);
            res.on('end', () => {
              const text = Buffer.concat(chunks).toString('utf8');
              if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`));
              try {
                resolve(fromJson(method.output, JSON.parse(text)));
              } catch (err) {
                reject(err);
              }
            });
          },
        );
        req.on('error', reject);
        // As the other clients give up at the deadline, so does this one (the header only tells the server).
        req.setTimeout(DEADLINE_MS, () => req.destroy(new Error(`no answer in ${DEADLINE_MS} ms`)));
        req.end(body);
      });
    },
    close: () => agent.destroy(),
  };
}

/** An open server stream; `close` cancels it (its end is then not reported). */
export interface OpenStream {
  close(): void;
}

/**
 * Opens a server stream on a connection of its own (gRPC: grpc-js; Connect: connect-node, the
 * protocol's encoding and HTTP version). `onMessage` runs as each message is decoded; `onEnd`
 * once, when the server ends the stream or it fails (not after `close`).
 */
export function openServerStream(
  protocol: 'grpc' | 'connect-json' | 'connect-binary' | 'connect-h2',
  port: number,
  method: DescMethodServerStreaming,
  request: Record<string, unknown>,
  tenant: TenantData,
  // biome-ignore lint/suspicious/noExplicitAny: the response of whichever method was called
  onMessage: (message: any) => void,
  onEnd: (err?: Error) => void,
): OpenStream {
  let closed = false;
  const end = (err?: Error) => {
    if (!closed) onEnd(err);
    closed = true;
  };
  if (protocol === 'grpc') {
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const metadata = new grpc.Metadata();
    for (const [k, v] of Object.entries(tenantHeaders(tenant))) metadata.set(k, v);
    const message = create(method.input, request as never);
    const call = client.makeServerStreamRequest(
      `/${method.parent.typeName}/${method.name}`,
      (m: typeof message) => Buffer.from(toBinary(method.input, m)),
      (b: Buffer) => fromBinary(method.output, b),
      message,
      metadata,
      {},
    );
    call.on('data', onMessage);
    call.on('error', (err: grpc.ServiceError) => end(new Error(`${grpc.status[err.code]}: ${err.details}`)));
    call.on('end', () => end());
    return {
      close() {
        closed = true;
        call.cancel();
        client.close();
      },
    };
  }
  const transport = createConnectTransport({
    baseUrl: `http://127.0.0.1:${port}`,
    httpVersion: protocol === 'connect-h2' ? '2' : '1.1',
    useBinaryFormat: protocol !== 'connect-json',
  });
  const abort = new AbortController();
  void (async () => {
    try {
      const res = await transport.stream(
        method,
        abort.signal,
        undefined,
        tenantHeaders(tenant),
        (async function* () {
          yield request as never;
        })(),
      );
      for await (const m of res.message) onMessage(m);
      end();
    } catch (err) {
      end(err as Error);
    }
  })();
  return {
    close() {
      closed = true;
      abort.abort();
    },
  };
}
