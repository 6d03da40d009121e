/**
 * Server interceptors for the calls connect-node serves (gRPC-Web, streaming, compressed or
 * GET requests; see direct-handler.ts for the rest): the same request id, authentication and
 * error mapping as every other call, from call.ts.
 */
import type { Interceptor } from '@connectrpc/connect';
import type { Logger } from '../logger.js';
import type { AuthService } from '../services/auth.js';
import { authorize, requestIdOf } from './call.js';
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
    const mapped = (err: unknown) => {
      const error = toConnectError(err, logger, requestId);
      error.metadata.set('x-request-id', requestId);
      return error;
    };
    try {
      const res = await next(req);
      res.header.set('x-request-id', requestId);
      if (!res.stream) return res;
      // A streaming handler runs while its messages are read, after this interceptor returned:
      // its errors are mapped here, or they would all reach the client as INTERNAL.
      const messages = res.message;
      return {
        ...res,
        message: (async function* () {
          try {
            yield* messages;
          } catch (err) {
            throw mapped(err);
          }
        })(),
      };
    } catch (err) {
      throw mapped(err);
    }
  };
}

export function authInterceptor(auth: AuthService): Interceptor {
  return (next) => async (req) => {
    // The request URL is built from :authority (HTTP/2) or Host (HTTP/1.1).
    const principal = await authorize(auth, req.service.typeName, (name) => req.header.get(name), hostOf(req.url), req.signal);
    if (principal) req.contextValues.set(principalKey, principal);
    return next(req);
  };
}
