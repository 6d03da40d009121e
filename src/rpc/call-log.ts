/**
 * One log line and one set of metrics per call.
 *
 * `logCall(logger, call)` is the single place a finished call is reported; any call path calls
 * it with a plain object. The connect path gets there through two pieces:
 * - `observeCalls(handler)` wraps the Node request handler: it sees the peer, the bytes and the
 *   end of the response, and runs the call inside a per-call record (AsyncLocalStorage, see
 *   src/metrics.ts) that the database layer counts statements into;
 * - the error interceptor (src/rpc/interceptors.ts) fills in what only connect knows: service,
 *   method, status code, tenant, request id and trace id (`noteCall`).
 */
import type http from 'node:http';
import type http2 from 'node:http2';
import { Code } from '@connectrpc/connect';
import { codeFromHttpStatus } from '@connectrpc/connect/protocol-connect';
import type { Logger } from '../logger.js';
import {
  type CallStats,
  callFinished,
  callStarted,
  currentCallStats,
  METRICS_CONTENT_TYPE,
  metricsText,
  withCallStats,
} from '../metrics.js';

export interface CallRecord {
  /** Fully qualified service name, e.g. `taskapi.v1.TaskService`. */
  readonly service: string;
  readonly method: string;
  /** gRPC status code name as grpc-go spells it: `OK`, `NotFound`, `Unavailable`, ... */
  readonly code: string;
  readonly durationMs: number;
  readonly tenantId?: string | null;
  readonly requestId?: string | null;
  /** W3C trace id from a `traceparent` header. */
  readonly traceId?: string | null;
  /** Remote address and port of the client connection. */
  readonly peer?: string | null;
  readonly protocol?: string | null;
  readonly bytesIn?: number | null;
  readonly bytesOut?: number | null;
  /** SQL statements sent for the call. */
  readonly statements?: number;
  /** The error message sent to the client, for failed calls. */
  readonly error?: string | null;
}

/**
 * Reports a finished call: a log line (info; health checks at debug) and the call metrics
 * (calls, latency, statements). A call path of its own also brackets each call with
 * `callStarted()` (in-flight gauge) and runs it in `withCallStats()` to count its statements.
 */
export function logCall(logger: Logger, call: CallRecord): void {
  callFinished(call);
  // Load balancers check health several times a second: at info that would drown the calls.
  const level = call.service.startsWith('grpc.health.') ? 'debug' : 'info';
  logger.call(level, {
    service: call.service,
    method: call.method,
    code: call.code,
    durationMs: Math.round(call.durationMs * 1000) / 1000,
    tenantId: call.tenantId ?? undefined,
    requestId: call.requestId ?? undefined,
    traceId: call.traceId ?? undefined,
    peer: call.peer ?? undefined,
    protocol: call.protocol ?? undefined,
    bytesIn: call.bytesIn ?? undefined,
    bytesOut: call.bytesOut ?? undefined,
    statements: call.statements,
    error: call.error ?? undefined,
  });
}

/** A call in progress on the connect path: filled in by the interceptor, reported at the end. */
interface PendingCall extends CallStats {
  service: string;
  method: string;
  code: string | null;
  tenantId: string | null;
  requestId: string | null;
  traceId: string | null;
  error: string | null;
  closeStream: (() => void) | null;
}

/** For the interceptor: what connect knows about the call being served here. */
export function noteCall(fields: Partial<Omit<PendingCall, 'statements'>>): void {
  const pending = currentCallStats() as PendingCall | undefined;
  if (pending) Object.assign(pending, fields);
}

export function codeName(code: Code): string {
  return code === undefined ? 'Unknown' : (Code[code] ?? 'Unknown');
}

const TRACEPARENT = /^[\da-f]{2}-([\da-f]{32})-[\da-f]{16}-[\da-f]{2}/;

/** The trace id of a W3C `traceparent` header; null when absent or malformed (or all zeros). */
export function traceIdOf(traceparent: string | null): string | null {
  const id = traceparent ? TRACEPARENT.exec(traceparent.trim())?.[1] : undefined;
  return id && !/^0+$/.test(id) ? id : null;
}

type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;
type NodeHandler = (req: NodeRequest, res: NodeResponse) => void;

/** gRPC and gRPC-Web report their status in `grpc-status`; Connect unary in the HTTP status. */
function codeFromResponse(res: NodeResponse, trailerStatus: string | undefined): string {
  const status = trailerStatus ?? res.getHeader('grpc-status');
  if (status !== undefined) return codeName(Number(status) as Code);
  // e.g. 404 for a path that names no method: Unimplemented, as the Connect protocol maps it.
  return res.statusCode === 200 ? 'OK' : codeName(codeFromHttpStatus(res.statusCode));
}

function byteLength(chunk: unknown, encoding?: unknown): number {
  if (typeof chunk === 'string')
    return Buffer.byteLength(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
  if (chunk instanceof Uint8Array) return chunk.byteLength;
  return 0;
}

/**
 * Wraps the connect-node handler: every request becomes one `logCall` when its response is
 * over, and `GET /metrics` answers with the Prometheus text format instead of an RPC.
 */
export function observeCalls(handler: NodeHandler, logger: Logger): NodeHandler {
  return (req, res) => {
    if (req.method === 'GET' && (req.url === '/metrics' || req.url?.startsWith('/metrics?'))) {
      // Http2ServerResponse has the same writeHead/end; the union of their overloads is not callable.
      const out = res as http.ServerResponse;
      metricsText().then(
        (text) => {
          out.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE });
          out.end(text);
        },
        (err: unknown) => {
          logger.error('metrics collection failed', { err });
          out.writeHead(500);
          out.end();
        },
      );
      return;
    }
    const started = performance.now();
    const inFlight = callStarted();
    const pending: PendingCall = {
      statements: 0,
      service: 'unknown',
      method: 'unknown',
      code: null,
      tenantId: null,
      requestId: null,
      traceId: null,
      error: null,
      closeStream: null,
    };
    // Body bytes, counted where Node hands them over, so that no reader of ours changes how the
    // request flows: a 'data' listener would switch it to flowing mode, and chunks emitted before
    // connect attaches its own reader would be lost (on HTTP/2 that hung streaming calls). Both
    // Node's HTTP/1.1 parser and its HTTP/2 compatibility layer deliver the body through push().
    let bytesIn = 0;
    const push = req.push.bind(req) as (chunk: unknown, encoding?: BufferEncoding) => boolean;
    (req as { push: unknown }).push = (chunk: unknown, encoding?: BufferEncoding) => {
      bytesIn += byteLength(chunk, encoding);
      return push(chunk, encoding);
    };
    let bytesOut = 0;
    const write = res.write.bind(res) as (...args: unknown[]) => boolean;
    const end = res.end.bind(res) as (...args: unknown[]) => NodeResponse;
    (res as { write: unknown }).write = (chunk: unknown, ...rest: unknown[]) => {
      bytesOut += byteLength(chunk, rest[0]);
      return write(chunk, ...rest);
    };
    (res as { end: unknown }).end = (chunk?: unknown, ...rest: unknown[]) => {
      if (typeof chunk !== 'function') bytesOut += byteLength(chunk, rest[0]);
      return end(chunk, ...rest);
    };
    let trailerStatus: string | undefined;
    const addTrailers = res.addTrailers.bind(res) as (t: Record<string, string>) => void;
    (res as { addTrailers: unknown }).addTrailers = (trailers: Record<string, string>) => {
      trailerStatus = trailers['grpc-status'] ?? trailerStatus;
      addTrailers(trailers);
    };
    const peer = req.socket?.remoteAddress ? `${req.socket.remoteAddress}:${req.socket.remotePort}` : null;

    let reported = false;
    const report = () => {
      if (reported) return;
      reported = true;
      inFlight();
      pending.closeStream?.();
      logCall(logger, {
        service: pending.service,
        method: pending.method,
        code: pending.code ?? codeFromResponse(res, trailerStatus),
        durationMs: performance.now() - started,
        tenantId: pending.tenantId,
        requestId: pending.requestId,
        traceId: pending.traceId,
        peer,
        protocol: 'stream' in req ? 'h2' : 'http/1.1',
        bytesIn,
        bytesOut,
        statements: pending.statements,
        error: pending.error,
      });
    };
    // As in server.ts: an Http2ServerResponse may not emit 'finish' while the client's half of
    // the stream is open; its stream does.
    ('stream' in res ? res.stream : res).once('finish', report);
    res.once('close', report);
    withCallStats(pending, () => handler(req, res));
  };
}
