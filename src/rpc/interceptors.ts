/**
 * Server interceptors: every call gets a request id and has its errors mapped to gRPC codes;
 * calls to tenant services are authenticated (API key and tenant) before the handler runs,
 * and TenantService calls need the admin token. Authentication is this one interceptor.
 */
import { randomUUID } from 'node:crypto';
import type { Interceptor } from '@connectrpc/connect';
import type { Logger } from '../logger.js';
import type { AuthService } from '../services/auth.js';
import { TenantService } from '../gen/taskapi/v1/tenant_pb.js';
import { principalKey, requestIdKey } from './context.js';
import { toConnectError } from './errors.js';

/** Services anyone may call: health checks and reflection. */
const PUBLIC_PACKAGES = ['grpc.health.v1.', 'grpc.reflection.'];

function hostOf(url: string): string | null {
  try {
    return new URL(url).host;
  } catch {
    return null;
  }
}

export function errorInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const requestId = req.header.get('x-request-id')?.slice(0, 100) || randomUUID();
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
    const service = req.service.typeName;
    if (PUBLIC_PACKAGES.some((p) => service.startsWith(p))) return next(req);
    const authorization = req.header.get('authorization');
    if (service === TenantService.typeName) {
      auth.requireAdmin(authorization);
      return next(req);
    }
    const principal = await auth.authenticate(
      {
        tenantId: req.header.get('x-tenant-id'),
        // The request URL is built from :authority (HTTP/2) or Host (HTTP/1.1).
        host: hostOf(req.url),
        authorization,
      },
      req.signal,
    );
    req.contextValues.set(principalKey, principal);
    return next(req);
  };
}
