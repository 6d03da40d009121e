/**
 * One port for every protocol: gRPC (HTTP/2), gRPC-Web and Connect (HTTP/1.1 and HTTP/2).
 *
 * `http2.createServer({ allowHTTP1: true })` accepts HTTP/1.1 only over TLS, so cleartext
 * HTTP/1.1 clients (curl, fetch) would be refused (docs/stack-notes.md). Instead a `net` server reads the
 * first bytes of each connection: the HTTP/2 client preface goes to an `http2` server, anything
 * else to an `http` server, and both serve the same connect-node handler. With TLS, a `tls` layer
 * sits in front of that same router (ALPN offers h2 and http/1.1; the preface decides, as in
 * cleartext), so both modes share one code path.
 *
 * Limits at the edge (src/rpc/edge-limits.ts): a cap on served connections (the rest are answered
 * UNAVAILABLE / 503 and logged), a first-request and an idle timeout for HTTP/2 sessions,
 * header and request timeouts for HTTP/1.1, and a header size refused per call.
 */
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import tls from 'node:tls';
import type { ServerLimits } from '../config/index.js';
import type { Logger } from '../logger.js';
import { trackConnection } from '../metrics.js';
import type { NodeHandler } from './connect-adapter.js';
import type { DirectHandler } from './direct-handler.js';
import { ConnectionGate, closeSession, refuseOversizedHeaders, watchSession } from './edge-limits.js';
import { answerUnavailable, answerUnavailableOnStream } from './unavailable.js';

const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
/** After the grace period and the abort, how long handlers get to answer by themselves. */
const ABORT_DRAIN_MS = 750;
/** How long answers written at the end of a stop get to leave before the sockets are cut. */
const FINAL_FLUSH_MS = 250;
/** A refused connection gets this long to send the request it is refused an answer to. */
const REFUSAL_TIMEOUT_MS = 2_000;
/** Unanswered refused connections (beyond the cap) held at once; more are dropped at accept. */
const REFUSAL_SLACK = 64;
/** The session's own header limit, as a multiple of MAX_HEADER_BYTES (see refuseOversizedHeaders). */
const SESSION_HEADER_LIST_FACTOR = 4;

export const DEFAULT_LIMITS: ServerLimits = {
  maxConnections: 4_096,
  firstRequestTimeoutMs: 10_000,
  http2IdleTimeoutMs: 300_000,
  http1KeepAliveTimeoutMs: 5_000,
  http1HeadersTimeoutMs: 10_000,
  http1RequestTimeoutMs: 30_000,
  maxHeaderBytes: 64 * 1024,
};

export interface RpcServer {
  /** The port actually bound (useful with port 0). */
  readonly port: number;
  /** Calls being served right now (every protocol). */
  readonly inFlight: number;
  /**
   * Stops accepting, lets in-flight calls finish for up to `graceMs`, then calls `abortRest`
   * (which should make the rest fail with UNAVAILABLE: abort their signal, cancel their
   * statements); calls that still have not ended get UNAVAILABLE written here, in their
   * protocol. Then every connection is torn down. Takes at most `graceMs` + ~1.3 s.
   */
  shutdown(graceMs: number, abortRest: () => Promise<void> | void): Promise<void>;
}

export interface ListenOptions {
  readonly port: number;
  readonly host?: string;
  readonly handler: NodeHandler;
  /** Serves what it recognizes (unary gRPC and Connect calls) before `handler` sees it. */
  readonly direct?: DirectHandler;
  readonly logger: Logger;
  readonly limits?: ServerLimits;
  /** Serve over TLS (PEM certificate chain and private key). */
  readonly tls?: { readonly cert: Buffer | string; readonly key: Buffer | string };
}

/** A call in flight: an HTTP/1.1 request, or an HTTP/2 stream (with the compatibility layer's
 * request and response when connect-node serves it rather than the direct path). */
type Call =
  | { readonly kind: 'h1'; readonly req: http.IncomingMessage; readonly res: http.ServerResponse }
  | {
      readonly kind: 'h2';
      readonly stream: http2.ServerHttp2Stream;
      readonly headers: http2.IncomingHttpHeaders;
      compat?: { readonly req: http2.Http2ServerRequest; readonly res: http2.Http2ServerResponse };
    };

/** @throws Error when the port cannot be bound, or the TLS certificate or key is unusable. */
export async function listen(options: ListenOptions): Promise<RpcServer> {
  const { logger } = options;
  const limits = options.limits ?? DEFAULT_LIMITS;
  let stopping = false;
  const { http1Request, http2Stream, answerAll, calls, drained, inFlight } = callTracker(
    options,
    limits,
    () => stopping,
  );

  // No request listener: streams are taken here (below), so that unary calls can skip the
  // compatibility layer; the rest get the same request/response objects it would build.
  const h2 = http2.createServer({
    maxSessionMemory: 64,
    settings: { maxHeaderListSize: SESSION_HEADER_LIST_FACTOR * limits.maxHeaderBytes },
  });
  h2.on('stream', http2Stream);
  const h1 = http.createServer(
    {
      maxHeaderSize: limits.maxHeaderBytes,
      keepAliveTimeout: limits.http1KeepAliveTimeoutMs,
      headersTimeout: limits.http1HeadersTimeoutMs,
      requestTimeout: limits.http1RequestTimeoutMs,
      // Node checks the two timeouts above every 30 s by default: a 10 s limit would hold for
      // up to 40 s.
      connectionsCheckingInterval: Math.min(1_000, limits.http1HeadersTimeoutMs),
    },
    http1Request,
  );
  // Connections above the cap are served by these two instead: every request gets UNAVAILABLE
  // (503 over Connect), and the connection is closed after it.
  const refusal = 'connection limit reached; retry later';
  const h2Refuser = http2.createServer((req, res) => {
    answerUnavailable(req, res, refusal);
    closeSession(req.stream.session!);
  });
  const h1Refuser = http.createServer(
    { headersTimeout: REFUSAL_TIMEOUT_MS, requestTimeout: REFUSAL_TIMEOUT_MS },
    (req, res) => {
      res.shouldKeepAlive = false;
      answerUnavailable(req, res, refusal);
    },
  );

  const sessions = new Set<http2.ServerHttp2Session>();
  const sockets = new Set<net.Socket>();
  for (const server of [h2, h2Refuser]) {
    server.on('session', (session) => {
      sessions.add(session);
      session.once('close', () => sessions.delete(session));
      session.on('error', (err) => logger.debug('http2 session error', { err }));
      if (server === h2) watchSession(session, limits.firstRequestTimeoutMs, limits.http2IdleTimeoutMs, logger);
      else setTimeout(() => session.destroy(), REFUSAL_TIMEOUT_MS).unref();
      // A session arriving after the stop began is told to go at once.
      if (stopping) closeSession(session);
    });
  }
  for (const s of [h1, h2, h1Refuser, h2Refuser] as const) {
    s.on('clientError' as never, (err: Error & { code?: string }, socket: net.Socket) => {
      logger.debug('malformed request', { err });
      // What Node answers without a listener: 431 for oversized headers, 408 for a request
      // that took too long, 400 for other garbage (unless a response on this keep-alive socket
      // is already under way).
      const pending = (socket as net.Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
      if (socket.writable && !pending?.headersSent && err.code !== 'ECONNRESET') {
        const status =
          err.code === 'HPE_HEADER_OVERFLOW'
            ? '431 Request Header Fields Too Large'
            : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
              ? '408 Request Timeout'
              : '400 Bad Request';
        socket.write(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      }
      socket.destroy();
    });
  }

  const gate = new ConnectionGate(limits.maxConnections, logger);
  /** A connection whose first bytes are readable (decrypted, with TLS): served or refused. */
  const serve = (socket: net.Socket) => {
    const admitted = !stopping && gate.admit();
    if (admitted) socket.once('close', () => gate.release());
    route(
      socket,
      admitted ? { h1, h2 } : { h1: h1Refuser, h2: h2Refuser },
      admitted ? limits.firstRequestTimeoutMs : REFUSAL_TIMEOUT_MS,
    );
  };

  const secure = options.tls
    ? tls.createServer(
        {
          cert: options.tls.cert,
          key: options.tls.key,
          ALPNProtocols: ['h2', 'http/1.1'],
          handshakeTimeout: limits.firstRequestTimeoutMs,
        },
        serve,
      )
    : null;
  // With a listener here Node no longer closes the socket itself, not even after the handshake
  // timeout (it only reports ERR_TLS_HANDSHAKE_TIMEOUT): close it, or a silent client stays.
  secure?.on('tlsClientError', (err, socket) => {
    logger.debug('tls handshake failed', { err });
    socket.destroy();
  });

  const tcp = net.createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    trackConnection(socket);
    socket.on('error', (err) => logger.debug('socket error', { err }));
    if (secure) secure.emit('connection', socket);
    else serve(socket);
  });
  // The cap on what is held at all, refused connections included: beyond it Node closes a new
  // connection as soon as it is accepted, and says so with 'drop'.
  tcp.maxConnections = limits.maxConnections + REFUSAL_SLACK;
  tcp.on('drop', () => gate.refused('dropped'));

  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen({ port: options.port, host: options.host }, () => {
      tcp.off('error', reject);
      resolve();
    });
  });
  tcp.on('error', (err) => logger.error('server error', { err }));
  // Node starts tracking an http.Server's connections (headersTimeout, requestTimeout, closing
  // idle keep-alive sockets) on 'listening', which a server fed by hand never emits by itself.
  h1.emit('listening');
  h1Refuser.emit('listening');
  const address = tcp.address() as net.AddressInfo;

  /** Resolves when no call is in flight, or after `ms`. */
  const drain = async (ms: number) => {
    if (inFlight() === 0) return;
    let wake = () => {};
    const idle = new Promise<void>((resolve) => {
      wake = resolve;
      drained.add(resolve);
    });
    const timeout = new AbortController();
    await Promise.race([idle, sleep(ms, undefined, { signal: timeout.signal }).catch(() => {})]);
    timeout.abort();
    drained.delete(wake);
  };

  return {
    port: address.port,
    get inFlight() {
      return inFlight();
    },
    async shutdown(graceMs, abortRest) {
      stopping = true;
      tcp.close();
      for (const call of calls)
        if (call.kind === 'h1' && !call.res.headersSent) call.res.setHeader('connection', 'close');
      // GOAWAY: clients stop opening streams on these sessions; open streams go on.
      for (const session of sessions) session.close();
      h1.closeIdleConnections();
      await drain(graceMs);
      if (inFlight() > 0) {
        logger.warn('grace period over; aborting calls still running', { inFlight: inFlight() });
        try {
          await abortRest();
        } catch (err) {
          logger.error('aborting calls failed', { err });
        }
        // Aborted handlers answer UNAVAILABLE themselves; destroying their sessions in the same
        // tick would reach clients as RST_STREAM / INTERNAL instead (docs/stack-notes.md).
        await drain(ABORT_DRAIN_MS);
      }
      if (inFlight() > 0) {
        logger.warn('calls still running after the abort; answering them UNAVAILABLE', { inFlight: inFlight() });
        answerAll('the server is shutting down');
        await drain(FINAL_FLUSH_MS);
      }
      // Sessions told to close end by themselves once their last stream has flushed; give the
      // final responses a moment to leave before cutting what is left.
      const closing = [...sessions].map(
        (session) =>
          new Promise<void>((resolve) => {
            if (session.destroyed) resolve();
            else session.once('close', () => resolve());
          }),
      );
      await Promise.race([Promise.all(closing), sleep(FINAL_FLUSH_MS)]);
      for (const session of sessions) session.destroy();
      for (const socket of sockets) socket.destroy();
      for (const server of [h1, h2, h1Refuser, h2Refuser]) server.close();
      secure?.close();
    },
  };
}

/**
 * Hands a connection to the HTTP/2 or the HTTP/1.1 server of `to` by its first bytes.
 *
 * The first bytes are collected here, not unshifted while undecided: unshifting buffered data
 * re-arms 'readable' at once, and a client that sent only "P" (or a preface split in two writes)
 * would spin the event loop forever. A connection that never says enough to be routed is not
 * kept: it is closed after `timeoutMs`.
 */
function route(socket: net.Socket, to: { h1: http.Server; h2: http2.Http2Server }, timeoutMs: number): void {
  socket.setTimeout(timeoutMs, () => socket.destroy());
  let head = Buffer.alloc(0);
  const onReadable = () => {
    for (let chunk: Buffer | null = socket.read(); chunk !== null; chunk = socket.read()) {
      head = Buffer.concat([head, chunk]);
    }
    const seen = head.subarray(0, HTTP2_PREFACE.length);
    const isPrefix = HTTP2_PREFACE.subarray(0, seen.length).equals(seen);
    if (isPrefix && head.length < HTTP2_PREFACE.length) return; // wait for more
    socket.off('readable', onReadable);
    socket.setTimeout(0);
    socket.unshift(head);
    if (isPrefix) {
      // The http2 server reads the socket itself; resuming here would lose the preface.
      to.h2.emit('connection', socket);
    } else {
      to.h1.emit('connection', socket);
      socket.resume();
    }
  };
  socket.on('readable', onReadable);
}

/**
 * Counts calls from their headers to the end of their stream, over every path (direct or
 * connect-node, HTTP/1.1 or HTTP/2), and dispatches them. A call ends when its response is
 * complete or its stream or socket closes, whichever comes first, exactly once: a reset stream,
 * a killed session or a dropped socket all close the stream, so the count cannot leak (a leak
 * would make every later stop wait out its grace period).
 */
function callTracker(
  options: Pick<ListenOptions, 'handler' | 'direct'>,
  limits: ServerLimits,
  stopping: () => boolean,
) {
  const { handler, direct } = options;
  const calls = new Set<Call>();
  const drained = new Set<() => void>();
  const begin = (call: Call) => {
    calls.add(call);
    return () => {
      if (!calls.delete(call)) return;
      if (calls.size === 0) for (const wake of drained) wake();
    };
  };
  const http1Request = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const finished = begin({ kind: 'h1', req, res });
    if (stopping()) res.setHeader('connection', 'close');
    res.once('finish', finished);
    res.once('close', finished);
    if (!direct?.http1(req, res)) handler(req, res);
  };
  const http2Stream = (
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    _flags: number,
    rawHeaders: string[],
  ) => {
    // A stream reset by the client while nobody listens must not become an uncaught error.
    stream.on('error', () => {});
    // Refused before it is counted: it is answered here and never reaches a handler.
    if (refuseOversizedHeaders(stream, headers, rawHeaders, limits.maxHeaderBytes)) return;
    const call: Call = { kind: 'h2', stream, headers };
    const finished = begin(call);
    // A call is over once its response is complete, even if the client's half of the stream is
    // still open (a refused oversized message): the stream's 'finish' says so, not 'end'.
    stream.once('finish', finished);
    stream.once('close', finished);
    if (direct?.http2(stream, headers)) return;
    // What Node's compatibility layer does for a server created with a request listener.
    const req = new http2.Http2ServerRequest(stream, headers, {}, rawHeaders);
    const res = new http2.Http2ServerResponse(stream);
    call.compat = { req, res };
    handler(req, res);
  };
  /** Ends every call still in flight with UNAVAILABLE, each in its protocol. */
  const answerAll = (message: string) => {
    for (const call of calls) {
      if (call.kind === 'h1') answerUnavailable(call.req, call.res, message);
      else if (call.compat) answerUnavailable(call.compat.req, call.compat.res, message);
      else answerUnavailableOnStream(call.stream, call.headers, message);
    }
  };
  return { http1Request, http2Stream, answerAll, calls, drained, inFlight: () => calls.size };
}
