/**
 * Two corrections to the responses of the calls connect-node serves (see direct-handler.ts for
 * the calls it does not; that path encodes correctly by itself):
 *
 * 1. connect-es reports a request body it cannot decode as protobuf as INTERNAL ("parse
 *    binary: …"), while an undecodable JSON body is INVALID_ARGUMENT. Garbage from a client is
 *    bad input, not a fault of the server (SPEC §5), and decoding happens before any
 *    interceptor runs, so the status is corrected here: in the JSON error body of Connect unary
 *    calls and in the status of gRPC calls. (gRPC-Web carries its status in the body and is
 *    left as is.)
 * 2. connect-es percent-encodes `grpc-message` with encodeURIComponent, but grpc-js decodes it
 *    with decodeURI, which leaves `%3A`, `%2C`, `%40`… as they are: every "field: reason" message
 *    reached grpc-js clients as "field%3A reason". The gRPC spec (PROTOCOL-HTTP2.md) encodes only
 *    bytes outside 0x20–0x7E and `%` itself, which every client decodes; the message is
 *    re-encoded that way.
 */
import type { UniversalServerResponse } from '@connectrpc/connect/protocol';

const PARSE_BINARY = 'parse binary:';
const GRPC_INTERNAL = '13';
const GRPC_INVALID_ARGUMENT = '3';

function undecodableMessage(detail: string): string {
  return `request: the message cannot be decoded (${detail.slice(PARSE_BINARY.length).trim()})`;
}

/** Percent-encoding of grpc-message as the gRPC spec has it. */
export function encodeGrpcMessage(message: string): string {
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function fixGrpcStatus(headers: Headers | undefined): void {
  const raw = headers?.get('grpc-message');
  if (!headers || raw === null || raw === undefined) return;
  let message: string;
  try {
    message = decodeURIComponent(raw);
  } catch {
    message = raw;
  }
  if (headers.get('grpc-status') === GRPC_INTERNAL && message.startsWith(PARSE_BINARY)) {
    headers.set('grpc-status', GRPC_INVALID_ARGUMENT);
    message = undecodableMessage(message);
  }
  headers.set('grpc-message', encodeGrpcMessage(message));
}

async function fixConnectUnary(res: UniversalServerResponse): Promise<UniversalServerResponse> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) chunks.push(chunk);
  const bytes = Buffer.concat(chunks);
  let error: { code?: unknown; message?: unknown } | undefined;
  try {
    error = JSON.parse(bytes.toString('utf8'));
  } catch {
    error = undefined;
  }
  let body: Uint8Array = bytes;
  let status = res.status;
  if (error?.code === 'internal' && typeof error.message === 'string' && error.message.startsWith(PARSE_BINARY)) {
    body = Buffer.from(JSON.stringify({ code: 'invalid_argument', message: undecodableMessage(error.message) }));
    status = 400;
    res.header?.set('content-length', String(body.byteLength));
  }
  return {
    ...res,
    status,
    body: (async function* () {
      yield body;
    })(),
  };
}

function fixGrpc(res: UniversalServerResponse): UniversalServerResponse {
  // A trailers-only response carries the status in its headers.
  fixGrpcStatus(res.header);
  const body = res.body as AsyncIterable<Uint8Array> | undefined;
  const trailer = res.trailer;
  if (!body || !trailer) return res;
  return {
    ...res,
    // The trailer is final once the body has been read to the end (the adapter sends it then).
    body: (async function* () {
      yield* body;
      fixGrpcStatus(trailer);
    })(),
  };
}

/**
 * The corrections above, for one response of connect-node's universal handler (applied by the
 * node adapter in connect-adapter.ts).
 */
export function correctResponse(
  res: UniversalServerResponse,
): UniversalServerResponse | Promise<UniversalServerResponse> {
  const contentType = res.header?.get('content-type') ?? '';
  if (res.status === 500 && contentType.startsWith('application/json') && res.body) return fixConnectUnary(res);
  if (/^application\/grpc(\+|;|$)/.test(contentType)) return fixGrpc(res);
  return res;
}
