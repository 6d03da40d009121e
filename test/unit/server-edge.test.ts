/**
 * The router's edge limits and its last-resort shutdown answers, through real clients (grpc-js,
 * node:http2, fetch, raw sockets) on 127.0.0.1. No database: the server serves the gRPC health
 * service (or a handler that never answers) so that each limit can be seen on its own.
 */

import { readFileSync } from 'node:fs';
import type http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import type { ServerLimits } from '../../src/config/index.js';
import { Health } from '../../src/gen/grpc/health/v1/health_pb.js';
import { createLogger } from '../../src/logger.js';
import type { DirectHandler } from '../../src/rpc/direct-handler.js';
import { healthService } from '../../src/rpc/health.js';
import { DEFAULT_LIMITS, listen, type RpcServer } from '../../src/rpc/server.js';
import { makeSelfSignedCertificate } from '../helpers/tls.js';

type NodeHandler = Parameters<typeof listen>[0]['handler'];

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Served {
  server: RpcServer;
  port: number;
  /** Log lines written so far (JSON). */
  logs: string[];
}

const healthHandler = (): NodeHandler =>
  connectNodeAdapter({
    routes: (router) =>
      router.service(
        Health,
        healthService({ services: [], probe: async () => true, stopping: () => false, watchIntervalMs: 50 }),
      ),
  }) as NodeHandler;

async function serve(
  limits: Partial<ServerLimits>,
  handler: NodeHandler = healthHandler(),
  direct?: DirectHandler,
  tls?: { cert: Buffer; key: Buffer },
): Promise<Served> {
  const logs: string[] = [];
  const server = await listen({
    port: 0,
    host: '127.0.0.1',
    handler,
    direct,
    tls,
    logger: createLogger('debug', (line) => logs.push(line)),
    limits: { ...DEFAULT_LIMITS, ...limits },
  });
  cleanups.push(() => server.shutdown(0, () => {}));
  return { server, port: server.port, logs };
}

/** Polls `condition` until it holds; fails after `timeoutMs`. */
async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A raw TCP connection that records what the server sends and when it closes. */
function rawConnection(port: number) {
  const socket = net.connect(port, '127.0.0.1');
  let received = Buffer.alloc(0);
  socket.on('data', (b) => (received = Buffer.concat([received, b])));
  socket.on('error', () => {});
  const closed = new Promise<number>((resolve) => {
    const opened = Date.now();
    socket.once('close', () => resolve(Date.now() - opened));
  });
  cleanups.push(() => socket.destroy());
  return { socket, received: () => received, closed };
}

/** HTTP/2 frame types in a byte stream (the server's side of a connection). */
function frameTypes(bytes: Buffer): number[] {
  const types: number[] = [];
  for (let at = 0; at + 9 <= bytes.length; ) {
    const length = bytes.readUIntBE(at, 3);
    types.push(bytes[at + 3]!);
    at += 9 + length;
  }
  return types;
}

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const EMPTY_SETTINGS = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
const GOAWAY = 7;

function h2Session(port: number): http2.ClientHttp2Session {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  cleanups.push(() => session.destroy());
  return session;
}

interface H2Response {
  headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader;
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
}

/** One request on `session`; resolves when the stream ends (or rejects when it is reset). */
function h2Request(
  session: http2.ClientHttp2Session,
  path: string,
  headers: http2.OutgoingHttpHeaders,
  body: Buffer | string,
): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'POST', ':path': path, ...headers });
    let responseHeaders: H2Response['headers'] = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on('response', (h) => (responseHeaders = h));
    stream.on('trailers', (t) => (trailers = t));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve({ headers: responseHeaders, trailers, body: Buffer.concat(chunks) }));
    stream.on('error', reject);
    stream.end(body);
  });
}

/** A gRPC message frame around `payload`. */
const grpcFrame = (payload = Buffer.alloc(0)) => Buffer.concat([Buffer.from([0, 0, 0, 0, payload.length]), payload]);
const GRPC = { 'content-type': 'application/grpc', te: 'trailers' };
const CONNECT_JSON = { 'content-type': 'application/json' };

function grpcCheck(port: number, metadata?: grpc.Metadata): Promise<{ code: number; details: string }> {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  cleanups.push(() => client.close());
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      '/grpc.health.v1.Health/Check',
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.alloc(0),
      metadata ?? new grpc.Metadata(),
      { deadline: Date.now() + 5_000 },
      (err) => resolve(err ? { code: err.code, details: err.details } : { code: grpc.status.OK, details: '' }),
    );
  });
}

describe('connections that send nothing useful', () => {
  it('closes a connection that sends nothing within FIRST_REQUEST_TIMEOUT_MS', async () => {
    const { port } = await serve({ firstRequestTimeoutMs: 300 });
    const conn = rawConnection(port);
    const after = await conn.closed;
    expect(after).toBeGreaterThanOrEqual(250);
    expect(after).toBeLessThan(3_000);
  });

  it('closes an HTTP/2 session that sends only the preface and SETTINGS, with a GOAWAY', async () => {
    const { port } = await serve({ firstRequestTimeoutMs: 300 });
    const conn = rawConnection(port);
    conn.socket.write(Buffer.concat([PREFACE, EMPTY_SETTINGS]));
    const after = await conn.closed;
    expect(after).toBeGreaterThanOrEqual(250);
    expect(after).toBeLessThan(3_000);
    expect(frameTypes(conn.received())).toContain(GOAWAY);
  });

  it('closes an idle HTTP/2 session, but not one with a stream open', async () => {
    const { port } = await serve({ http2IdleTimeoutMs: 300 });
    // B watches health: a stream that stays open and quiet.
    const watching = h2Session(port);
    const watch = watching.request({ ':method': 'POST', ':path': '/grpc.health.v1.Health/Watch', ...GRPC });
    watch.on('error', () => {});
    watch.end(grpcFrame());
    await new Promise((resolve) => watch.once('data', resolve));
    // A makes one call and goes quiet: it is closed once the idle time has passed.
    const idle = h2Session(port);
    const idleClosed = new Promise((resolve) => idle.once('close', resolve));
    const res = await h2Request(idle, '/grpc.health.v1.Health/Check', CONNECT_JSON, '{}');
    expect(JSON.parse(res.body.toString())).toEqual({ status: 'SERVING' });
    await idleClosed;
    expect(watching.closed || watching.destroyed).toBe(false);
    expect(watch.closed).toBe(false);
    // Once its stream ends, B is idle too.
    const watchingClosed = new Promise((resolve) => watching.once('close', resolve));
    watch.close(http2.constants.NGHTTP2_CANCEL);
    await watchingClosed;
  });
});

describe('TLS', () => {
  it('closes a connection that does not finish its handshake within FIRST_REQUEST_TIMEOUT_MS, and serves one that does', async () => {
    const certificate = makeSelfSignedCertificate();
    cleanups.push(() => certificate.remove());
    const { port } = await serve({ firstRequestTimeoutMs: 300 }, healthHandler(), undefined, {
      cert: certificate.cert,
      key: readFileSync(certificate.keyFile),
    });
    const silent = rawConnection(port);
    const after = await silent.closed;
    expect(after).toBeGreaterThanOrEqual(250);
    expect(after).toBeLessThan(3_000);

    const session = http2.connect(`https://127.0.0.1:${port}`, { ca: certificate.cert, servername: 'localhost' });
    session.on('error', () => {});
    cleanups.push(() => session.destroy());
    const res = await h2Request(session, '/grpc.health.v1.Health/Check', CONNECT_JSON, '{}');
    expect(JSON.parse(res.body.toString())).toEqual({ status: 'SERVING' });
  });
});

describe('HTTP/1.1 timeouts', () => {
  it('answers 408 and closes when a request body stalls past HTTP1_REQUEST_TIMEOUT_MS', async () => {
    const { port } = await serve({ http1HeadersTimeoutMs: 300, http1RequestTimeoutMs: 600 });
    const conn = rawConnection(port);
    conn.socket.write(
      'POST /grpc.health.v1.Health/Check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{',
    );
    const after = await conn.closed;
    expect(conn.received().toString()).toMatch(/^HTTP\/1\.1 408 /);
    expect(after).toBeGreaterThanOrEqual(550);
    expect(after).toBeLessThan(3_000);
  });

  it('answers 408 and closes when headers stall past HTTP1_HEADERS_TIMEOUT_MS', async () => {
    const { port } = await serve({ http1HeadersTimeoutMs: 300, http1RequestTimeoutMs: 5_000 });
    const conn = rawConnection(port);
    conn.socket.write('POST /grpc.health.v1.Health/Check HTTP/1.1\r\nHost: x\r\n');
    const after = await conn.closed;
    expect(conn.received().toString()).toMatch(/^HTTP\/1\.1 408 /);
    expect(after).toBeLessThan(3_000);
  });
});

describe('connection cap', () => {
  it('refuses connections beyond MAX_CONNECTIONS with UNAVAILABLE / 503, logs it, and serves again once one closes', async () => {
    const { port, logs } = await serve({ maxConnections: 2 });
    const kept = [h2Session(port), h2Session(port)];
    for (const session of kept) {
      expect((await h2Request(session, '/grpc.health.v1.Health/Check', CONNECT_JSON, '{}')).headers[':status']).toBe(
        200,
      );
    }
    const refused = await grpcCheck(port);
    expect(refused.code).toBe(grpc.status.UNAVAILABLE);
    expect(refused.details).toContain('connection limit');
    const res = await fetch(`http://127.0.0.1:${port}/grpc.health.v1.Health/Check`, {
      method: 'POST',
      headers: CONNECT_JSON,
      body: '{}',
    });
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ code: 'unavailable' });
    const limitLines = logs.filter((l) => l.includes('connection limit reached'));
    // One line for the burst (rate-limited), naming the setting.
    expect(limitLines).toHaveLength(1);
    expect(limitLines[0]).toContain('MAX_CONNECTIONS');

    kept[0]!.destroy();
    await waitFor('a new connection to be served', async () => (await grpcCheck(port)).code === grpc.status.OK);
  });
});

describe('oversized headers', () => {
  it('refuses one call with too large headers (RESOURCE_EXHAUSTED / 431); its session and other calls go on', async () => {
    const { server, port } = await serve({ maxHeaderBytes: 8_192 });
    const session = h2Session(port);
    const watch = session.request({ ':method': 'POST', ':path': '/grpc.health.v1.Health/Watch', ...GRPC });
    watch.on('error', () => {});
    watch.end(grpcFrame());
    await new Promise((resolve) => watch.once('data', resolve));

    const big = 'x'.repeat(12_000);
    const grpcRefused = await h2Request(
      session,
      '/grpc.health.v1.Health/Check',
      { ...GRPC, 'x-big': big },
      grpcFrame(),
    );
    expect(grpcRefused.headers['grpc-status']).toBe('8');
    expect(decodeURIComponent(String(grpcRefused.headers['grpc-message']))).toContain('at most 8192');
    const connectRefused = await h2Request(
      session,
      '/grpc.health.v1.Health/Check',
      { ...CONNECT_JSON, 'x-big': big },
      '{}',
    );
    expect(connectRefused.headers[':status']).toBe(431);
    // Beyond the session's own limit (4×) Node resets that one stream, and only that one.
    await expect(
      h2Request(session, '/grpc.health.v1.Health/Check', { ...CONNECT_JSON, 'x-big': 'x'.repeat(40_000) }, '{}'),
    ).rejects.toThrow();

    expect(watch.closed).toBe(false);
    expect(session.closed || session.destroyed).toBe(false);
    const ok = await h2Request(session, '/grpc.health.v1.Health/Check', CONNECT_JSON, '{}');
    expect(JSON.parse(ok.body.toString())).toEqual({ status: 'SERVING' });

    // grpc-js sees a RESOURCE_EXHAUSTED answer, not a transport failure.
    const metadata = new grpc.Metadata();
    metadata.set('x-big', big);
    expect(await grpcCheck(port, metadata)).toMatchObject({
      code: grpc.status.RESOURCE_EXHAUSTED,
      details: expect.stringContaining('request headers are'),
    });

    // HTTP/1.1: the parser's limit, 431.
    const h1 = await fetch(`http://127.0.0.1:${port}/grpc.health.v1.Health/Check`, {
      method: 'POST',
      headers: { ...CONNECT_JSON, 'x-big': big },
      body: '{}',
    });
    expect(h1.status).toBe(431);

    watch.close(http2.constants.NGHTTP2_CANCEL);
    await waitFor('no call in flight', () => server.inFlight === 0);
  });
});

describe('in-flight accounting', () => {
  it('counts a call whose client vanished as ended, so a later stop does not wait for it', async () => {
    const never: NodeHandler = () => {};
    const { server, port } = await serve({}, never);
    const session = h2Session(port);
    const stream = session.request({ ':method': 'POST', ':path': '/x.Y/Z', ...GRPC });
    stream.on('error', () => {});
    stream.end(grpcFrame());
    await waitFor('the call to be counted', () => server.inFlight === 1);
    session.destroy();
    await waitFor('the call to be counted as ended', () => server.inFlight === 0);
    const started = Date.now();
    await server.shutdown(10_000, () => {});
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});

describe('shutdown: calls whose handler never ends', () => {
  it('answers each UNAVAILABLE in its own protocol after the grace period, whether or not it had started answering', async () => {
    // Streams that already sent headers and a message, as a server stream would have.
    const started: NodeHandler = (req, res) => {
      const type = String(req.headers['content-type']);
      if (!req.url?.includes('Started')) return;
      const out = res as http.ServerResponse; // the same calls exist on Http2ServerResponse
      out.writeHead(200, { 'content-type': type });
      out.write(
        type.startsWith('application/connect+')
          ? Buffer.concat([Buffer.from([0, 0, 0, 0, 2]), Buffer.from('{}')])
          : grpcFrame(),
      );
    };
    // The direct path takes /x.Y/Direct and never answers either.
    const direct: DirectHandler = {
      http2: (_stream, headers) => String(headers[':path']).endsWith('/Direct'),
      http1: (req) => String(req.url).endsWith('/Direct'),
    };
    const { server, port } = await serve({}, started, direct);

    const directGrpc = h2Request(h2Session(port), '/x.Y/Direct', GRPC, grpcFrame());
    const directConnect = fetch(`http://127.0.0.1:${port}/x.Y/Direct`, {
      method: 'POST',
      headers: CONNECT_JSON,
      body: '{}',
    });
    const grpcUnary = grpcCheck(port);
    const session = h2Session(port);
    const grpcStream = h2Request(session, '/x.Y/Started', GRPC, grpcFrame());
    const connectUnary = fetch(`http://127.0.0.1:${port}/x.Y/Z`, { method: 'POST', headers: CONNECT_JSON, body: '{}' });
    const connectStream = fetch(`http://127.0.0.1:${port}/x.Y/Started`, {
      method: 'POST',
      headers: { 'content-type': 'application/connect+json' },
      body: Buffer.concat([Buffer.from([0, 0, 0, 0, 2]), Buffer.from('{}')]),
    });
    const grpcWeb = fetch(`http://127.0.0.1:${port}/x.Y/Z`, {
      method: 'POST',
      headers: { 'content-type': 'application/grpc-web+proto' },
      body: grpcFrame(),
    });
    await waitFor('seven calls in flight', () => server.inFlight === 7);

    const stopStarted = Date.now();
    let aborted = false;
    await server.shutdown(200, () => {
      aborted = true;
    });
    expect(aborted).toBe(true);
    expect(Date.now() - stopStarted).toBeLessThan(200 + 3_000);

    expect(await grpcUnary).toMatchObject({ code: grpc.status.UNAVAILABLE, details: 'the server is shutting down' });
    const stream = await grpcStream;
    expect(stream.body.length).toBeGreaterThan(0);
    expect(stream.trailers['grpc-status']).toBe('14');
    const unary = await connectUnary;
    expect(unary.status).toBe(503);
    expect(await unary.json()).toEqual({ code: 'unavailable', message: 'the server is shutting down' });
    const connectBody = Buffer.from(await (await connectStream).arrayBuffer());
    // The message already sent, then the end-of-stream message (flag 2) with the error.
    expect(connectBody[0]).toBe(0);
    const end = connectBody.subarray(7);
    expect(end[0]).toBe(2);
    expect(JSON.parse(end.subarray(5).toString())).toEqual({
      error: { code: 'unavailable', message: 'the server is shutting down' },
    });
    const web = await grpcWeb;
    expect(web.headers.get('grpc-status')).toBe('14');
    expect((await directGrpc).headers['grpc-status']).toBe('14');
    const directUnary = await directConnect;
    expect(directUnary.status).toBe(503);
    expect(await directUnary.json()).toEqual({ code: 'unavailable', message: 'the server is shutting down' });
  });
});
