/**
 * The last resort of a shutdown: a call whose handler has not ended after its signal was aborted
 * and its statements cancelled still gets a proper UNAVAILABLE in its own protocol, written
 * straight onto the HTTP response, instead of a reset stream (which clients report as INTERNAL
 * "RST_STREAM with code 0") or a closed socket.
 */
import type http from 'node:http';
import type http2 from 'node:http2';

type Request = http.IncomingMessage | http2.Http2ServerRequest;
type Response = http.ServerResponse | http2.Http2ServerResponse;

const GRPC_UNAVAILABLE = '14';

/** grpc-message is percent-encoded (gRPC over HTTP/2, "Responses"). */
function grpcMessage(message: string): string {
  return encodeURIComponent(message);
}

/** A length-prefixed frame: gRPC-Web trailers (flag 0x80), Connect end-of-stream (flag 0x02). */
function frame(flags: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(flags, 0);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

function writeHead(res: Response, status: number, headers: Record<string, string>): void {
  if ('stream' in res) res.writeHead(status, headers);
  else res.writeHead(status, headers);
}

/**
 * Ends `res` with UNAVAILABLE in the protocol of `req` (gRPC, gRPC-Web, Connect streaming or
 * unary), whether or not the handler already sent headers or messages. A response that is
 * already complete is left alone. Never throws.
 */
export function answerUnavailable(req: Request, res: Response, message: string): void {
  if (res.writableEnded || res.destroyed) return;
  // The handler may still try to write later; that must not surface as an unhandled 'error'.
  res.on('error', () => {});
  const contentType = String(req.headers['content-type'] ?? '').toLowerCase();
  try {
    if (contentType.startsWith('application/grpc-web')) {
      const trailer = Buffer.from(`grpc-status:${GRPC_UNAVAILABLE}\r\ngrpc-message:${grpcMessage(message)}\r\n`);
      if (!res.headersSent) {
        writeHead(res, 200, {
          'content-type': contentType,
          'grpc-status': GRPC_UNAVAILABLE,
          'grpc-message': grpcMessage(message),
        });
        res.end();
        return;
      }
      const body = frame(0x80, trailer);
      res.end(contentType.startsWith('application/grpc-web-text') ? body.toString('base64') : body);
    } else if (contentType.startsWith('application/grpc')) {
      const status = { 'grpc-status': GRPC_UNAVAILABLE, 'grpc-message': grpcMessage(message) };
      if ('stream' in res && !res.headersSent) {
        // Trailers-only: one HEADERS frame that ends the stream, as gRPC clients expect it.
        res.stream.respond({ ':status': 200, 'content-type': 'application/grpc', ...status }, { endStream: true });
        return;
      }
      if (!res.headersSent) writeHead(res, 200, { 'content-type': 'application/grpc' });
      res.addTrailers(status);
      res.end();
    } else if (contentType.startsWith('application/connect+')) {
      // Connect streaming: the end-of-stream message is JSON whatever the codec.
      if (!res.headersSent) writeHead(res, 200, { 'content-type': contentType });
      res.end(frame(0x02, Buffer.from(JSON.stringify({ error: { code: 'unavailable', message } }))));
    } else if (!res.headersSent) {
      writeHead(res, 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ code: 'unavailable', message }));
    } else {
      res.end();
    }
  } catch {
    // The stream went away while we wrote: nothing is left to answer.
    res.destroy();
  }
}

/**
 * The same for an HTTP/2 stream served without the compatibility layer (the direct path). Once
 * that path has sent headers it is writing its whole answer, so only a stream without headers
 * is answered here. Never throws.
 */
export function answerUnavailableOnStream(
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  message: string,
): void {
  if (stream.headersSent || stream.destroyed || stream.closed) return;
  const contentType = String(headers['content-type'] ?? '').toLowerCase();
  try {
    if (contentType.startsWith('application/grpc')) {
      stream.respond(
        {
          ':status': 200,
          'content-type': 'application/grpc',
          'grpc-status': GRPC_UNAVAILABLE,
          'grpc-message': grpcMessage(message),
        },
        { endStream: true },
      );
    } else {
      stream.respond({ ':status': 503, 'content-type': 'application/json' });
      stream.end(JSON.stringify({ code: 'unavailable', message }));
    }
  } catch {
    stream.destroy();
  }
}
