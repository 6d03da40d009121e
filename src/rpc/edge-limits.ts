/**
 * What a connection may cost before it does useful work: how many are served at once, how long
 * an HTTP/2 session may sit without a call, how large a call's headers may be. Used by
 * src/rpc/server.ts; kept apart so that each rule can be read (and tested) on its own.
 */
import type http2 from 'node:http2';
import type { Logger } from '../logger.js';

/** How often "connection limit reached" is logged at most while connections keep being refused. */
const REFUSAL_LOG_INTERVAL_MS = 10_000;
/** A session told to close (GOAWAY) that has not closed after this is destroyed. */
const SESSION_CLOSE_GRACE_MS = 1_000;

/**
 * Admission of connections: at most `max` are served; the ones above it are refused (answered
 * UNAVAILABLE / 503 by the caller) and the refusals logged, at most once per interval, with a
 * count, so that an operator sees the limit was hit without a line per connection.
 */
export class ConnectionGate {
  private served = 0;
  private refusedSinceLog = 0;
  private lastLog = 0;

  constructor(
    readonly max: number,
    private readonly logger: Logger,
  ) {}

  /** True when one more connection may be served; the caller then calls `release` when it closes. */
  admit(): boolean {
    if (this.served < this.max) {
      this.served++;
      return true;
    }
    this.refused('refused');
    return false;
  }

  release(): void {
    this.served--;
  }

  /** Notes a connection turned away (`how`: refused with an answer, or dropped by the kernel-side cap). */
  refused(how: 'refused' | 'dropped'): void {
    this.refusedSinceLog++;
    const now = Date.now();
    if (now - this.lastLog >= REFUSAL_LOG_INTERVAL_MS) {
      this.logger.warn('connection limit reached: refusing new connections (MAX_CONNECTIONS)', {
        maxConnections: this.max,
        refused: this.refusedSinceLog,
        how,
      });
      this.lastLog = now;
      this.refusedSinceLog = 0;
    }
  }
}

/** GOAWAY, then the session ends once its streams have; one that lingers is destroyed. */
export function closeSession(session: http2.Http2Session): void {
  if (session.closed || session.destroyed) return;
  session.close();
  setTimeout(() => session.destroy(), SESSION_CLOSE_GRACE_MS).unref();
}

/**
 * Closes an HTTP/2 session that opens no stream within `firstRequestMs` of its start (a client
 * that sent only the preface, or only SETTINGS, or nothing at all), and one that has had no
 * stream open for `idleMs` since (0: never). A long call or stream keeps its session: only a
 * session with nothing open is idle.
 */
export function watchSession(
  session: http2.ServerHttp2Session,
  firstRequestMs: number,
  idleMs: number,
  logger: Logger,
): void {
  let open = 0;
  let timer: NodeJS.Timeout | undefined;
  const arm = (ms: number, reason: string) => {
    clearTimeout(timer);
    if (ms <= 0) return;
    timer = setTimeout(() => {
      logger.debug('closing http2 session', { reason });
      closeSession(session);
    }, ms);
    timer.unref();
  };
  arm(firstRequestMs, 'no request');
  session.on('stream', (stream) => {
    open++;
    clearTimeout(timer);
    stream.once('close', () => {
      open--;
      if (open === 0 && !session.closed && !session.destroyed) arm(idleMs, 'idle');
    });
  });
  session.once('close', () => clearTimeout(timer));
}

/**
 * Size of a header list the way HTTP/2 counts it (RFC 9113 §6.5.2: name + value + 32 per field),
 * pseudo-headers included, so that one number bounds HTTP/1.1 and HTTP/2 alike.
 */
export function headerListBytes(rawHeaders: readonly string[]): number {
  let bytes = 0;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2)
    bytes += Buffer.byteLength(rawHeaders[i]!) + Buffer.byteLength(rawHeaders[i + 1]!) + 32;
  return bytes;
}

/**
 * Refuses one HTTP/2 call whose headers exceed `maxBytes`: RESOURCE_EXHAUSTED for gRPC (and
 * gRPC-Web), 431 for anything else. The session and its other calls go on.
 *
 * Why not simply advertise SETTINGS_MAX_HEADER_LIST_SIZE = maxBytes: Node then resets an
 * oversized stream with ENHANCE_YOUR_CALM, which clients report as a transport failure (grpc-js:
 * "Bandwidth exhausted"), not as an answer. So the session advertises a larger limit and this
 * check answers within it. Beyond the session limit Node still resets that one stream. One
 * header FIELD whose HPACK-encoded size exceeds 64 KiB is different: nghttp2 cannot decode it
 * (NGHTTP2_HD_MAX_NV, compiled in) and must end the whole connection with COMPRESSION_ERROR,
 * since the HPACK state it shares with every other call is then lost. No setting changes that.
 * @returns true when the call was answered here.
 */
export function refuseOversizedHeaders(
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  rawHeaders: readonly string[],
  maxBytes: number,
): boolean {
  const bytes = headerListBytes(rawHeaders);
  if (bytes <= maxBytes) return false;
  const message = `request headers are ${bytes} bytes; at most ${maxBytes} are accepted`;
  const contentType = String(headers['content-type'] ?? '');
  try {
    if (contentType.startsWith('application/grpc')) {
      stream.respond(
        {
          ':status': 200,
          'content-type': contentType,
          'grpc-status': '8',
          'grpc-message': encodeURIComponent(message),
        },
        { endStream: true },
      );
    } else {
      stream.respond({ ':status': 431, 'content-type': 'application/json' });
      stream.end(JSON.stringify({ code: 'resource_exhausted', message }));
    }
  } catch {
    stream.destroy();
  }
  return true;
}
