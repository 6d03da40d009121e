/**
 * Server interceptors for the calls connect-node serves (gRPC-Web, streaming, compressed or
 * GET requests; see direct-handler.ts for the rest): the same request id, authentication and
 * error mapping as every other call (call.ts), and the call's service, method, code, tenant and
 * trace id noted for its log line (call-log.ts).
 */
import type { Interceptor, StreamResponse } from '@connectrpc/connect';
import type { Logger } from '../logger.js';
import { streamOpened } from '../metrics.js';
import type { AuthService } from '../services/auth.js';
import { authorize, requestIdOf } from './call.js';
import { codeName, noteCall, traceIdOf } from './call-log.js';
import { principalKey, requestIdKey } from './context.js';
import { toConnectError } from './errors.js';

function hostOf(url: string): string | null {
  try {
    return new URL(url).host;
  } catch {
    return null;
  }
}

export function errorInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const requestId = requestIdOf((name) => req.header.get(name));
    req.contextValues.set(requestIdKey, requestId);
    const claimedTenant = req.header.get('x-tenant-id')?.slice(0, 40) || null;
    // The authenticated tenant once known; before that, the one the caller named.
    const tenant = () => req.contextValues.get(principalKey)?.tenantId.toString() ?? claimedTenant;
    noteCall({
      service: req.service.typeName,
      method: req.method.name,
      requestId,
      traceId: traceIdOf(req.header.get('traceparent')),
      tenantId: claimedTenant,
    });
    const failed = (err: unknown) => {
      const error = toConnectError(err, logger, requestId);
      error.metadata.set('x-request-id', requestId);
      noteCall({ code: codeName(error.code), error: error.rawMessage, tenantId: tenant() });
      return error;
    };
    try {
      const res = await next(req);
      res.header.set('x-request-id', requestId);
      if (!res.stream) {
        noteCall({ code: 'OK', tenantId: tenant() });
        return res;
      }
      // A streaming handler runs while its messages are read, after this interceptor returned:
      // its errors are mapped here, or they would all reach the client as INTERNAL.
      noteCall({ tenantId: tenant(), closeStream: streamOpened() });
      return { ...res, message: observeStream(res.message, failed, () => noteCall({ code: 'OK' })) } as StreamResponse;
    } catch (err) {
      throw failed(err);
    }
  };
}

/** A response stream whose end (or error, mapped to a gRPC code) is noted for the call's log. */
async function* observeStream<T>(
  messages: AsyncIterable<T>,
  failed: (err: unknown) => Error,
  ended: () => void,
): AsyncIterable<T> {
  try {
    yield* messages;
    ended();
  } catch (err) {
    throw failed(err);
  }
}

export function authInterceptor(auth: AuthService): Interceptor {
  return (next) => async (req) => {
    // The request URL is built from :authority (HTTP/2) or Host (HTTP/1.1).
    const principal = await authorize(
      auth,
      req.service.typeName,
      (name) => req.header.get(name),
      hostOf(req.url),
      req.signal,
    );
    if (principal) req.contextValues.set(principalKey, principal);
    return next(req);
  };
}
