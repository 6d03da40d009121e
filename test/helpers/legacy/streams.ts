/**
 * Server-streaming calls through the same two real clients as test/helpers/clients.ts:
 * grpc-js (HTTP/2) and the Connect protocol over HTTP/1.1 with fetch (enveloped JSON). Messages
 * are collected as they arrive, in proto JSON form, so a test can wait for a condition on them.
 */
import * as grpc from '@grpc/grpc-js';
import type { Protocol } from './app.js';
import { CODE_NAMES, CONNECT_CODES, fromGrpc, type Json, loadPackage, RpcError, toGrpc } from './clients.js';

export interface ServerStream {
  /** Messages received so far, in order. */
  readonly messages: Json[];
  /** How the stream ended: null for OK, else the error. Never rejects. */
  readonly ended: Promise<RpcError | null>;
  readonly done: boolean;
  /**
   * Resolves once `predicate(messages)` holds; rejects when the stream ends first or after
   * `timeoutMs`, naming what was received.
   */
  until(predicate: (messages: Json[]) => boolean, timeoutMs?: number): Promise<Json[]>;
  /** Cancels the call from the client's side. */
  cancel(): void;
}

function collector() {
  const messages: Json[] = [];
  const checks = new Set<() => void>();
  let done = false;
  let finish: (err: RpcError | null) => void = () => {};
  const ended = new Promise<RpcError | null>((resolve) => {
    finish = (err) => {
      if (done) return;
      done = true;
      resolve(err);
      for (const check of [...checks]) check();
    };
  });
  const push = (m: Json) => {
    messages.push(m);
    for (const check of [...checks]) check();
  };
  const until = (predicate: (messages: Json[]) => boolean, timeoutMs = 30_000) =>
    new Promise<Json[]>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const check = () => {
        if (predicate(messages)) {
          checks.delete(check);
          clearTimeout(timer);
          resolve(messages);
        } else if (done) {
          checks.delete(check);
          clearTimeout(timer);
          void ended.then((err) =>
            reject(new Error(`stream ended (${err?.message ?? 'OK'}) after ${messages.length} messages`)),
          );
        }
      };
      timer = setTimeout(() => {
        checks.delete(check);
        reject(
          new Error(
            `condition not met within ${timeoutMs} ms; ${messages.length} messages: ${JSON.stringify(messages).slice(0, 2000)}`,
          ),
        );
      }, timeoutMs);
      checks.add(check);
      check();
    });
  return { messages, ended, push, finish, until, isDone: () => done };
}

export function serverStream(
  protocol: Protocol,
  port: number,
  service: string,
  method: string,
  request: Json,
  headers: Record<string, string>,
  options: { timeoutMs?: number } = {},
): ServerStream {
  return protocol === 'grpc'
    ? grpcStream(port, service, method, request, headers, options.timeoutMs)
    : connectStream(
        port,
        service,
        method,
        request,
        options.timeoutMs === undefined ? headers : { ...headers, 'connect-timeout-ms': String(options.timeoutMs) },
      );
}

/**
 * proto-loader (oneofs: true) names the set member of each proto3 `optional` field in a
 * synthetic oneof (`_actorId: 'actorId'`); Connect JSON has no such key.
 */
function withoutSyntheticOneofs(value: Json): Json {
  if (Array.isArray(value)) return value.map(withoutSyntheticOneofs);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([k, v]) => !(k.startsWith('_') && typeof v === 'string' && v === k.slice(1)))
      .map(([k, v]) => [k, withoutSyntheticOneofs(v)]),
  );
}

function grpcStream(
  port: number,
  service: string,
  method: string,
  request: Json,
  headers: Record<string, string>,
  timeoutMs?: number,
): ServerStream {
  const c = collector();
  const Stub = loadPackage().taskapi.v1[service];
  const client = new Stub(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as grpc.Client & Record<string, Json>;
  const metadata = new grpc.Metadata();
  for (const [k, v] of Object.entries(headers)) metadata.set(k, v);
  const options: grpc.CallOptions = timeoutMs === undefined ? {} : { deadline: Date.now() + timeoutMs };
  const call = client[method.charAt(0).toLowerCase() + method.slice(1)](
    toGrpc(request),
    metadata,
    options,
  ) as grpc.ClientReadableStream<Json>;
  call.on('data', (m: Json) => c.push(withoutSyntheticOneofs(fromGrpc(m) ?? {})));
  call.on('error', (err: grpc.ServiceError) => {
    c.finish(new RpcError(CODE_NAMES[err.code] ?? 'UNKNOWN', err.details));
    client.close();
  });
  call.on('status', (status: grpc.StatusObject) => {
    if (status.code === grpc.status.OK) {
      c.finish(null);
      client.close();
    }
  });
  return {
    messages: c.messages,
    ended: c.ended,
    get done() {
      return c.isDone();
    },
    until: c.until,
    cancel: () => call.cancel(),
  };
}

function connectStream(
  port: number,
  service: string,
  method: string,
  request: Json,
  headers: Record<string, string>,
): ServerStream {
  const c = collector();
  const abort = new AbortController();
  const json = Buffer.from(JSON.stringify(request));
  const envelope = Buffer.alloc(5 + json.length);
  envelope.writeUInt32BE(json.length, 1);
  json.copy(envelope, 5);
  void (async () => {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/taskapi.v1.${service}/${method}`, {
        method: 'POST',
        headers: { 'content-type': 'application/connect+json', 'connect-protocol-version': '1', ...headers },
        body: envelope,
        signal: abort.signal,
      });
      if (!res.ok || !res.body) {
        const body = JSON.parse((await res.text()) || '{}');
        c.finish(new RpcError(CONNECT_CODES[body.code] ?? 'UNKNOWN', body.message ?? `HTTP ${res.status}`));
        return;
      }
      let buffer = Buffer.alloc(0);
      for await (const chunk of res.body) {
        buffer = Buffer.concat([buffer, chunk]);
        while (buffer.length >= 5 && buffer.length >= 5 + buffer.readUInt32BE(1)) {
          const flags = buffer[0]!;
          const length = buffer.readUInt32BE(1);
          const payload = JSON.parse(buffer.subarray(5, 5 + length).toString('utf8') || '{}');
          buffer = buffer.subarray(5 + length);
          if (flags & 0x02) {
            // End of stream: carries the error, if any.
            c.finish(
              payload.error
                ? new RpcError(CONNECT_CODES[payload.error.code] ?? 'UNKNOWN', payload.error.message ?? '')
                : null,
            );
            return;
          }
          c.push(payload);
        }
      }
      c.finish(new RpcError('UNKNOWN', 'stream ended without an end-of-stream message'));
    } catch (err) {
      c.finish(new RpcError(abort.signal.aborted ? 'CANCELLED' : 'UNAVAILABLE', (err as Error).message));
    }
  })();
  return {
    messages: c.messages,
    ended: c.ended,
    get done() {
      return c.isDone();
    },
    until: c.until,
    cancel: () => abort.abort(),
  };
}
