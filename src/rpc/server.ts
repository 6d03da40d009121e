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

type NodeHandler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void;

const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

export interface RpcServer {
  /** The port actually bound (useful with port 0). */
  readonly port: number;
  /** In-flight HTTP requests. */
  readonly inFlight: number;
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
  const track: NodeHandler = (req, res) => {
    inFlight++;
    let done = false;
    const finished = () => {
      if (done) return;
      done = true;
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
    socket.on('error', (err) => logger.debug('socket error', { err }));
    socket.once('readable', function route() {
      const head: Buffer | null = socket.read(Math.min(HTTP2_PREFACE.length, socket.readableLength));
      if (head === null) {
        socket.once('readable', route);
        return;
      }
      const isPrefix = HTTP2_PREFACE.subarray(0, head.length).equals(head);
      if (isPrefix && head.length < HTTP2_PREFACE.length) {
        // Not enough bytes to decide yet: put them back and wait for more.
        socket.unshift(head);
        socket.once('readable', route);
        return;
      }
      socket.unshift(head);
      if (isPrefix) {
        // The http2 server reads the socket itself; resuming here would lose the preface.
        h2.emit('connection', socket);
      } else {
        h1.emit('connection', socket);
        socket.resume();
      }
    });
  });

  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen({ port: options.port, host: options.host }, () => {
      tcp.off('error', reject);
      resolve();
    });
  });
  tcp.on('error', (err) => logger.error('server error', { err }));
  const address = tcp.address() as net.AddressInfo;

  return {
    port: address.port,
    get inFlight() {
      return inFlight;
    },
    async shutdown(graceMs, abortRest) {
      tcp.close();
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
