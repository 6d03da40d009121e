/**
 * One port for every protocol: gRPC (HTTP/2), gRPC-Web and Connect (HTTP/1.1 and HTTP/2).
 *
 * `http2.createServer({ allowHTTP1: true })` accepts HTTP/1.1 only over TLS, so cleartext
 * HTTP/1.1 clients (curl, fetch) would be refused (STACK.md). Instead a `net` server reads the
 * first bytes of each connection: the HTTP/2 client preface goes to an `http2` server, anything
 * else to an `http` server, and both serve the same connect-node handler.
 */
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../logger.js';
import { trackConnection } from '../metrics.js';

type NodeHandler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void;

const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const ROUTE_TIMEOUT_MS = 10_000;

export interface RpcServer {
  /** The port actually bound (useful with port 0). */
  readonly port: number;
  /**
   * Stops accepting, lets in-flight calls finish for up to `graceMs`, then calls `abortRest`
   * (which should fail the rest with UNAVAILABLE) and tears every connection down.
   */
  shutdown(graceMs: number, abortRest: () => void): Promise<void>;
}

export interface ListenOptions {
  readonly port: number;
  readonly host?: string;
  readonly handler: NodeHandler;
  readonly logger: Logger;
  /** Largest header list accepted; larger requests are refused by the HTTP layer. */
  readonly maxHeaderBytes?: number;
}

/** @throws Error when the port cannot be bound. */
export async function listen(options: ListenOptions): Promise<RpcServer> {
  const { logger } = options;
  const maxHeaderBytes = options.maxHeaderBytes ?? 64 * 1024;
  let inFlight = 0;
  const drained = new Set<() => void>();
  let stopping = false;
  // HTTP/1.1 responses not yet complete: told `Connection: close` once stopping begins.
  const h1Responses = new Set<http.ServerResponse>();
  const track: NodeHandler = (req, res) => {
    inFlight++;
    const h1Response = 'stream' in res ? null : res;
    if (h1Response) {
      if (stopping) h1Response.setHeader('connection', 'close');
      else h1Responses.add(h1Response);
    }
    let done = false;
    const finished = () => {
      if (done) return;
      done = true;
      if (h1Response) h1Responses.delete(h1Response);
      inFlight--;
      if (inFlight === 0) for (const wake of drained) wake();
    };
    // A call is over once its response is complete, even if the client's half of the stream is
    // still open (a refused oversized message). Http2ServerResponse emits no 'finish' then; its
    // stream does.
    ('stream' in res ? res.stream : res).once('finish', finished);
    res.once('close', finished);
    options.handler(req, res);
  };

  const h2 = http2.createServer({ maxSessionMemory: 64, settings: { maxHeaderListSize: maxHeaderBytes } }, track);
  const h1 = http.createServer({ maxHeaderSize: maxHeaderBytes, keepAliveTimeout: 5_000 }, track);
  const sessions = new Set<http2.ServerHttp2Session>();
  const sockets = new Set<net.Socket>();
  h2.on('session', (session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    session.on('error', (err) => logger.debug('http2 session error', { err }));
  });
  for (const s of [h1, h2] as const) {
    s.on('clientError' as never, (err: Error & { code?: string }, socket: net.Socket) => {
      logger.debug('malformed request', { err });
      // What Node answers without a listener: 431 for oversized headers, 400 for other garbage
      // (unless a response on this keep-alive socket is already under way).
      const pending = (socket as net.Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
      if (socket.writable && !pending?.headersSent && err.code !== 'ECONNRESET') {
        socket.write(err.code === 'HPE_HEADER_OVERFLOW' ? 'HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n' : 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      }
      socket.destroy();
    });
  }

  const tcp = net.createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    trackConnection(socket);
    socket.on('error', (err) => logger.debug('socket error', { err }));
    // A connection that never says enough to be routed is not kept forever.
    socket.setTimeout(ROUTE_TIMEOUT_MS, () => socket.destroy());
    // The first bytes are collected here, not unshifted while undecided: unshifting buffered
    // data re-arms 'readable' at once, and a client that sent only "P" (or a preface split in
    // two writes) would spin the event loop forever.
    let head = Buffer.alloc(0);
    const route = () => {
      for (let chunk: Buffer | null; (chunk = socket.read()) !== null; ) head = Buffer.concat([head, chunk]);
      const seen = head.subarray(0, HTTP2_PREFACE.length);
      const isPrefix = HTTP2_PREFACE.subarray(0, seen.length).equals(seen);
      if (isPrefix && head.length < HTTP2_PREFACE.length) return; // wait for more
      socket.off('readable', route);
      socket.setTimeout(0);
      socket.unshift(head);
      if (isPrefix) {
        // The http2 server reads the socket itself; resuming here would lose the preface.
        h2.emit('connection', socket);
      } else {
        h1.emit('connection', socket);
        socket.resume();
      }
    };
    socket.on('readable', route);
  });

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
  const address = tcp.address() as net.AddressInfo;

  return {
    port: address.port,
    async shutdown(graceMs, abortRest) {
      stopping = true;
      tcp.close();
      for (const res of h1Responses) if (!res.headersSent) res.setHeader('connection', 'close');
      // GOAWAY: clients stop opening streams on these sessions; open streams go on.
      for (const session of sessions) session.close();
      h1.closeIdleConnections();
      if (inFlight > 0) {
        let wake = () => {};
        const idle = new Promise<void>((resolve) => {
          wake = resolve;
          drained.add(resolve);
        });
        await Promise.race([idle, sleep(graceMs)]);
        drained.delete(wake);
      }
      if (inFlight > 0) {
        logger.warn('grace period over; aborting calls still running', { inFlight });
        abortRest();
        // Let the aborted calls write their UNAVAILABLE status before the sockets go: destroying
        // in the same tick reaches clients as RST_STREAM / INTERNAL (STACK.md).
        await sleep(100);
      }
      // Sessions told to close end by themselves once their last stream has flushed; give the
      // final responses a moment to leave before cutting what is left.
      const closing = [...sessions].map((session) => new Promise<void>((resolve) => {
        if (session.destroyed) resolve();
        else session.once('close', () => resolve());
      }));
      await Promise.race([Promise.all(closing), sleep(1_000)]);
      for (const session of sessions) session.destroy();
      for (const socket of sockets) socket.destroy();
      h1.close();
      h2.close();
    },
  };
}
