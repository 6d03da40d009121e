/**
 * The direct path: unary gRPC calls (HTTP/2) and unary Connect calls (POST, HTTP/1.1 or HTTP/2)
 * served straight from the socket's request, with the same handlers, the same call steps
 * (call.ts) and the same error mapping as connect-node. Everything else — gRPC-Web, streaming,
 * compressed bodies, Connect GET, gRPC with the JSON codec — returns false here and is served by
 * connect-node.
 *
 * Why: measured from outside, connect-node's gRPC path cost several times the server CPU of a
 * bare @grpc/grpc-js server per call (async-iterable pipelines, Headers objects, an
 * AbortController and a DOMException per call, the HTTP/2 compatibility layer). A unary call
 * needs none of that: read one length-prefixed message, run the handler, write one message and
 * the status. See docs/performance.md for the measurements.
 *
 * Wire formats, from the protocol specs:
 * - gRPC: request `content-type: application/grpc[+proto]`, body = 1 flag byte + 4-byte
 *   big-endian length + message; response headers, one such frame, then trailers
 *   `grpc-status` / `grpc-message` (percent-encoded: bytes outside 0x20–0x7E and `%`). An error
 *   before any message is a trailers-only response (status in the headers, stream ended).
 * - Connect unary: request body = the bare message (`application/proto` or `application/json`),
 *   `connect-timeout-ms`; response 200 with the bare message (trailers as `trailer-*` headers),
 *   or an HTTP error status with a JSON body `{ code, message }`.
 */
import type http from 'node:http';
import type http2 from 'node:http2';
import type net from 'node:net';
import {
  type DescMessage,
  type DescMethod,
  type DescService,
  fromBinary,
  fromJson,
  type Message,
} from '@bufbuild/protobuf';
import { Code, ConnectError, type ContextValues, createContextValues, type HandlerContext } from '@connectrpc/connect';
import type { Logger } from '../logger.js';
import { type CallStats, callStarted, withCallStats } from '../metrics.js';
import type { AuthService } from '../services/auth.js';
import { encodeMessage } from './binary.js';
import { authorize, type HeaderGet, requestIdOf } from './call.js';
import { codeName, logCall, traceIdOf } from './call-log.js';
import { principalKey, requestIdKey } from './context.js';
import { toConnectError } from './errors.js';
import { encodeGrpcMessage } from './grpc-compat.js';
import { encodeJson } from './json.js';

// biome-ignore lint/suspicious/noExplicitAny: a handler of any method, typed by its descriptor at registration
type UnaryImpl = (request: any, context: HandlerContext) => Promise<any>;

interface Route {
  readonly service: DescService;
  readonly method: DescMethod & { methodKind: 'unary' };
  readonly impl: UnaryImpl;
}

export interface DirectHandlerOptions {
  /** Every service with its implementation (connect-es ServiceImpl objects). */
  readonly services: readonly (readonly [DescService, object])[];
  readonly auth: AuthService;
  readonly logger: Logger;
  /** Larger requests are refused with RESOURCE_EXHAUSTED. */
  readonly maxRequestBytes: number;
  /** Aborted at the end of the shutdown grace period: running calls end with its reason. */
  readonly shutdownSignal: AbortSignal;
}

export interface DirectHandler {
  /** Serves an HTTP/2 stream when it is a unary gRPC or Connect call; false when it is not. */
  http2(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): boolean;
  /** Serves an HTTP/1.1 request when it is a unary Connect call; false when it is not. */
  http1(req: http.IncomingMessage, res: http.ServerResponse): boolean;
}

/** Connect's HTTP status per code (connectrpc.com/docs/protocol#error-codes). */
const CONNECT_HTTP_STATUS: Readonly<Record<Code, number>> = {
  [Code.Canceled]: 499,
  [Code.Unknown]: 500,
  [Code.InvalidArgument]: 400,
  [Code.DeadlineExceeded]: 504,
  [Code.NotFound]: 404,
  [Code.AlreadyExists]: 409,
  [Code.PermissionDenied]: 403,
  [Code.ResourceExhausted]: 429,
  [Code.FailedPrecondition]: 400,
  [Code.Aborted]: 409,
  [Code.OutOfRange]: 400,
  [Code.Unimplemented]: 501,
  [Code.Internal]: 500,
  [Code.Unavailable]: 503,
  [Code.DataLoss]: 500,
  [Code.Unauthenticated]: 401,
};

/** Connect's code names: the enum's names in snake case (`InvalidArgument` → `invalid_argument`). */
const CONNECT_CODE_NAMES = Object.fromEntries(
  Object.entries(Code)
    .filter(([, v]) => typeof v === 'number')
    .map(([name, v]) => [v, name.replace(/[A-Z]/g, (c, i) => (i ? '_' : '') + c.toLowerCase())]),
) as Record<Code, string>;

const GRPC_CONTENT_TYPE = /^application\/grpc(\+proto)?(;.*)?$/i;
const CONNECT_CONTENT_TYPE = /^application\/(proto|json)(;\s*charset=utf-8)?$/i;
const GRPC_TIMEOUT = /^(\d{1,8})([HMSmun])$/;
const GRPC_TIMEOUT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 0.001, n: 0.000001 };

type Protocol = 'grpc' | 'connect-proto' | 'connect-json';

interface Outcome {
  readonly requestId: string;
  /** Response headers the handler set. */
  readonly headers: Record<string, string>;
  readonly body?: Uint8Array;
  readonly error?: ConnectError;
  /** Writes the call's log line and metrics, once its response (of `bytesOut`) is written. */
  readonly report: (bytesOut: number) => void;
}

/** The parts of an incoming request the call needs, whatever the transport. */
interface Incoming {
  readonly header: HeaderGet;
  readonly all: () => Iterable<[string, string]>;
  readonly host: string | null;
  readonly url: string;
  /** For the log line. */
  readonly peer: string | null;
  readonly transport: 'h2' | 'http/1.1';
}

const peerOf = (socket: net.Socket | undefined): string | null =>
  socket?.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : null;

const first = (v: string | string[] | undefined): string | null =>
  v === undefined ? null : Array.isArray(v) ? (v[0] ?? null) : v;

function grpcTimeoutMs(value: string | null): number | undefined {
  const m = value === null ? null : GRPC_TIMEOUT.exec(value);
  return m ? Number(m[1]) * GRPC_TIMEOUT_MS[m[2]!]! : undefined;
}

function connectTimeoutMs(value: string | null): number | undefined {
  return value !== null && /^\d{1,10}$/.test(value) ? Number(value) : undefined;
}

function decodeFailed(detail: unknown): ConnectError {
  const reason = detail instanceof Error ? detail.message : String(detail);
  return new ConnectError(`request: the message cannot be decoded (${reason})`, Code.InvalidArgument);
}

/** Adds `ConnectError.metadata` entries to an outgoing header object. */
function withMetadata(headers: Record<string, string>, error: ConnectError, prefix = ''): Record<string, string> {
  error.metadata.forEach((value, key) => {
    headers[prefix + key] = value;
  });
  return headers;
}

export function createDirectHandler(options: DirectHandlerOptions): DirectHandler {
  const { auth, logger, maxRequestBytes, shutdownSignal } = options;
  const routes = new Map<string, Route>();
  for (const [service, impl] of options.services) {
    for (const method of service.methods) {
      const fn = (impl as Record<string, unknown>)[method.localName];
      if (method.methodKind !== 'unary' || typeof fn !== 'function') continue;
      routes.set(`/${service.typeName}/${method.name}`, {
        service,
        method: method as Route['method'],
        impl: fn.bind(impl) as UnaryImpl,
      });
    }
  }

  // One listener on the shutdown signal for all calls, instead of one per call (Node warns past
  // ten listeners on one signal, and each is work on the hot path).
  const running = new Set<AbortController>();
  shutdownSignal.addEventListener(
    'abort',
    () => {
      for (const call of running) call.abort(shutdownSignal.reason);
    },
    { once: true },
  );

  /**
   * Runs one call: decode, authenticate, handle, encode; every failure becomes an RPC error. The
   * call counts as in flight, and its statements are counted, until the outcome's `report`.
   */
  async function run(
    route: Route,
    protocol: Protocol,
    incoming: Incoming,
    timeoutMs: number | undefined,
    body: Promise<Buffer>,
    call: AbortController,
  ): Promise<Outcome> {
    const started = performance.now();
    const inFlight = callStarted();
    const stats: CallStats = { statements: 0 };
    const requestId = requestIdOf(incoming.header);
    let tenantId = incoming.header('x-tenant-id')?.slice(0, 40) || null;
    let bytesIn = 0;
    let responseHeaders = (): Record<string, string> => ({});
    const reporter = (error?: ConnectError) => (bytesOut: number) => {
      inFlight();
      logCall(logger, {
        service: route.service.typeName,
        method: route.method.name,
        code: error ? codeName(error.code) : 'OK',
        durationMs: performance.now() - started,
        tenantId,
        requestId,
        traceId: traceIdOf(incoming.header('traceparent')),
        peer: incoming.peer,
        protocol: incoming.transport,
        bytesIn,
        bytesOut,
        statements: stats.statements,
        error: error?.rawMessage ?? null,
      });
    };
    return withCallStats(stats, async (): Promise<Outcome> => {
      try {
        const bytes = await body;
        bytesIn = bytes.byteLength;
        const request = decode(route.method.input, protocol, protocol === 'grpc' ? unframe(bytes) : bytes);
        const principal = await authorize(auth, route.service.typeName, incoming.header, incoming.host, call.signal);
        const values = createContextValues();
        values.set(requestIdKey, requestId);
        if (principal) {
          values.set(principalKey, principal);
          tenantId = principal.tenantId.toString();
        }
        const handler = handlerContext(route, protocol, incoming.all, incoming.url, timeoutMs, call, values);
        responseHeaders = handler.responseHeaders;
        // The answer goes out when the call ends — deadline, cancel, shutdown — even if the
        // handler is still waiting on the database (a frozen server, a lock): its transaction
        // rolls back on its own when it sees the signal or its statement is cancelled.
        const result = await Promise.race([route.impl(request, handler.context), whenAborted(call.signal)]);
        return {
          requestId,
          headers: responseHeaders(),
          body: encode(route.method.output, protocol, result),
          report: reporter(),
        };
      } catch (err) {
        const error = toConnectError(err, logger, requestId);
        error.metadata.set('x-request-id', requestId);
        return { requestId, headers: responseHeaders(), error, report: reporter(error) };
      }
    });
  }

  /**
   * Starts the call's cancellation: the deadline, shutdown, and the client going away
   * (`onClientGone` registers the callback on the transport's 'close'; it does nothing once the
   * call has ended, so a normal close costs no error object).
   */
  function startCall(timeoutMs: number | undefined, onClientGone: (abort: () => void) => void) {
    const call = new AbortController();
    let ended = false;
    running.add(call);
    if (shutdownSignal.aborted) call.abort(shutdownSignal.reason);
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => call.abort(new ConnectError('the deadline was exceeded', Code.DeadlineExceeded)), timeoutMs);
    onClientGone(() => {
      if (!ended) call.abort(new ConnectError('the client cancelled the call', Code.Canceled));
    });
    const end = () => {
      ended = true;
      clearTimeout(timer);
      running.delete(call);
    };
    return { call, end };
  }

  function http2Incoming(headers: http2.IncomingHttpHeaders, socket: net.Socket | undefined): Incoming {
    const header: HeaderGet = (name) => first(headers[name]);
    return {
      header,
      all: () =>
        Object.entries(headers).flatMap(([name, value]) =>
          name.startsWith(':') || value === undefined ? [] : [[name, String(value)] as [string, string]],
        ),
      host: header(':authority'),
      url: `http://${header(':authority')}${header(':path')}`,
      peer: peerOf(socket),
      transport: 'h2',
    };
  }

  function serveGrpc(route: Route, stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    const incoming = http2Incoming(headers, stream.session?.socket as net.Socket | undefined);
    const timeoutMs = grpcTimeoutMs(incoming.header('grpc-timeout'));
    const { call, end } = startCall(timeoutMs, (abort) => stream.once('close', abort));
    const body = readBody(stream, maxRequestBytes, call.signal);
    void run(route, 'grpc', incoming, timeoutMs, body, call).then((outcome) => {
      end();
      if (stream.destroyed || stream.closed) return outcome.report(0);
      if (outcome.error) {
        // Trailers-only: the status travels in the headers of an ended stream.
        const status = {
          ...outcome.headers,
          ':status': '200',
          'content-type': 'application/grpc+proto',
          'grpc-status': String(outcome.error.code),
          'grpc-message': encodeGrpcMessage(outcome.error.rawMessage),
        };
        stream.respond(withMetadata(status, outcome.error), { endStream: true });
        outcome.report(0);
        return;
      }
      const message = outcome.body!;
      const frame = Buffer.allocUnsafe(5 + message.byteLength);
      frame[0] = 0;
      frame.writeUInt32BE(message.byteLength, 1);
      frame.set(message, 5);
      stream.respond(
        {
          ...outcome.headers,
          ':status': '200',
          'content-type': 'application/grpc+proto',
          'x-request-id': outcome.requestId,
        },
        { waitForTrailers: true },
      );
      stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(frame);
      outcome.report(frame.byteLength);
    });
  }

  function connectResponse(protocol: Protocol, outcome: Outcome): [number, Record<string, string>, Uint8Array] {
    if (outcome.error) {
      const { error } = outcome;
      const body = Buffer.from(JSON.stringify({ code: CONNECT_CODE_NAMES[error.code], message: error.rawMessage }));
      return [
        CONNECT_HTTP_STATUS[error.code],
        withMetadata({ ...outcome.headers, 'content-type': 'application/json' }, error),
        body,
      ];
    }
    const contentType = protocol === 'connect-json' ? 'application/json' : 'application/proto';
    return [200, { ...outcome.headers, 'content-type': contentType, 'x-request-id': outcome.requestId }, outcome.body!];
  }

  function serveConnectHttp2(
    route: Route,
    protocol: Protocol,
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
  ): void {
    const incoming = http2Incoming(headers, stream.session?.socket as net.Socket | undefined);
    const timeoutMs = connectTimeoutMs(incoming.header('connect-timeout-ms'));
    const { call, end } = startCall(timeoutMs, (abort) => stream.once('close', abort));
    void run(route, protocol, incoming, timeoutMs, readBody(stream, maxRequestBytes, call.signal), call).then(
      (outcome) => {
        end();
        if (stream.destroyed || stream.closed) return outcome.report(0);
        const [status, out, bytes] = connectResponse(protocol, outcome);
        stream.respond({ ...out, ':status': String(status), 'content-length': String(bytes.byteLength) });
        stream.end(bytes);
        outcome.report(bytes.byteLength);
      },
    );
  }

  function serveConnectHttp1(
    route: Route,
    protocol: Protocol,
    req: http.IncomingMessage,
    res: http.ServerResponse,
  ): void {
    const header: HeaderGet = (name) => first(req.headers[name]);
    const incoming: Incoming = {
      header,
      all: () =>
        Object.entries(req.headers).flatMap(([name, value]) =>
          value === undefined ? [] : [[name, String(value)] as [string, string]],
        ),
      host: header('host'),
      url: `http://${header('host')}${req.url}`,
      peer: peerOf(req.socket),
      transport: 'http/1.1',
    };
    const timeoutMs = connectTimeoutMs(header('connect-timeout-ms'));
    const { call, end } = startCall(timeoutMs, (abort) => res.once('close', abort));
    void run(route, protocol, incoming, timeoutMs, readBody(req, maxRequestBytes, call.signal), call).then(
      (outcome) => {
        end();
        if (res.destroyed) return outcome.report(0);
        const [status, out, bytes] = connectResponse(protocol, outcome);
        res.writeHead(status, { ...out, 'content-length': bytes.byteLength });
        res.end(bytes);
        outcome.report(bytes.byteLength);
      },
    );
  }

  return {
    http2(stream, headers) {
      if (headers[':method'] !== 'POST') return false;
      const route = routes.get(headers[':path'] ?? '');
      if (!route) return false;
      const contentType = first(headers['content-type']) ?? '';
      if (GRPC_CONTENT_TYPE.test(contentType)) {
        const encoding = first(headers['grpc-encoding']);
        if (encoding !== null && encoding !== 'identity') return false;
        serveGrpc(route, stream, headers);
        return true;
      }
      const protocol = connectProtocol(contentType, first(headers['content-encoding']));
      if (protocol === null) return false;
      serveConnectHttp2(route, protocol, stream, headers);
      return true;
    },
    http1(req, res) {
      if (req.method !== 'POST') return false;
      const route = routes.get(req.url ?? '');
      if (!route) return false;
      const protocol = connectProtocol(
        first(req.headers['content-type']) ?? '',
        first(req.headers['content-encoding']),
      );
      if (protocol === null) return false;
      serveConnectHttp1(route, protocol, req, res);
      return true;
    },
  };
}

function connectProtocol(contentType: string, contentEncoding: string | null): Protocol | null {
  if (contentEncoding !== null && contentEncoding !== 'identity') return null;
  const m = CONNECT_CONTENT_TYPE.exec(contentType);
  if (!m) return null;
  return m[1]!.toLowerCase() === 'json' ? 'connect-json' : 'connect-proto';
}

/**
 * The whole request body. Rejects with RESOURCE_EXHAUSTED past `limit` bytes, and with the
 * call's reason when the call ends first (the client went away mid-body, the deadline passed,
 * shutdown): a body that never completes must not keep the call waiting.
 */
function readBody(source: NodeJS.ReadableStream, limit: number, signal: AbortSignal): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = (err: unknown) => {
      source.off('data', onData);
      signal.removeEventListener('abort', onAbort);
      // Keep draining so the client can finish sending and read the answer.
      source.resume();
      reject(err);
    };
    const onAbort = () => stop(signal.reason);
    const onData = (chunk: Buffer) => {
      size += chunk.byteLength;
      if (size > limit)
        stop(new ConnectError(`request: the message is larger than ${limit} bytes`, Code.ResourceExhausted));
      else chunks.push(chunk);
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    source.on('data', onData);
    source.once('end', () => {
      signal.removeEventListener('abort', onAbort);
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    });
    source.once('error', (err: Error) => stop(new ConnectError(`request: ${err.message}`, Code.Canceled)));
  });
}

/** Rejects with the signal's reason once it fires. */
function whenAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}

/** The one message of a unary gRPC request body. */
function unframe(bytes: Buffer): Buffer {
  if (bytes.byteLength < 5) throw decodeFailed('a gRPC request carries exactly one message');
  if (bytes[0] !== 0) throw decodeFailed('compressed message without grpc-encoding');
  const length = bytes.readUInt32BE(1);
  if (bytes.byteLength !== 5 + length) throw decodeFailed('a gRPC request carries exactly one message');
  return bytes.subarray(5);
}

function decode(schema: DescMessage, protocol: Protocol, bytes: Buffer): Message {
  try {
    if (protocol === 'connect-json') {
      return fromJson(schema, bytes.byteLength === 0 ? {} : JSON.parse(bytes.toString('utf8')), {
        ignoreUnknownFields: false,
      });
    }
    return fromBinary(schema, bytes);
  } catch (err) {
    throw decodeFailed(err);
  }
}

/** The handler's result (an init object or a message) as the response body. */
function encode(schema: DescMessage, protocol: Protocol, result: unknown): Uint8Array {
  return protocol === 'connect-json'
    ? Buffer.from(encodeJson(schema, result as object))
    : encodeMessage(schema, result as object);
}

/** What the handlers see of the call, plus the response headers they set (if they did). */
function handlerContext(
  route: Route,
  protocol: Protocol,
  allHeaders: () => Iterable<[string, string]>,
  url: string,
  timeoutMs: number | undefined,
  call: AbortController,
  values: ContextValues,
): { context: HandlerContext; responseHeaders: () => Record<string, string> } {
  const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
  // Headers objects are built only when a handler asks for one: most never do.
  let requestHeader: Headers | undefined;
  let responseHeader: Headers | undefined;
  let responseTrailer: Headers | undefined;
  const context: HandlerContext = {
    service: route.service,
    method: route.method,
    protocolName: protocol === 'grpc' ? 'grpc' : 'connect',
    requestMethod: 'POST',
    url,
    signal: call.signal,
    timeoutMs: () => (deadline === undefined ? undefined : deadline - Date.now()),
    get requestHeader() {
      requestHeader ??= new Headers([...allHeaders()]);
      return requestHeader;
    },
    get responseHeader() {
      responseHeader ??= new Headers();
      return responseHeader;
    },
    get responseTrailer() {
      responseTrailer ??= new Headers();
      return responseTrailer;
    },
    values,
  };
  const responseHeaders = () => {
    const out: Record<string, string> = {};
    responseHeader?.forEach((value, key) => {
      out[key] = value;
    });
    // Unary responses carry trailers as headers (Connect prefixes them; gRPC has no other place
    // before its status trailers, which the transport writes).
    responseTrailer?.forEach((value, key) => {
      out[protocol === 'grpc' ? key : `trailer-${key}`] = value;
    });
    return out;
  };
  return { context, responseHeaders };
}
