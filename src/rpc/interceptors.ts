/**
 * Server interceptors: every call gets a request id, has its errors mapped to gRPC codes and is
 * noted for its log line; calls to tenant services are authenticated (API key and tenant)
 * before the handler runs, and TenantService calls need the admin token. Authentication is this
 * one interceptor.
 */
import { randomUUID } from 'node:crypto';
import type { Interceptor, StreamResponse } from '@connectrpc/connect';
import type { Logger } from '../logger.js';
import { streamOpened } from '../metrics.js';
import type { AuthService } from '../services/auth.js';
import { TenantService } from '../gen/taskapi/v1/tenant_pb.js';
import { codeName, noteCall, traceIdOf } from './call-log.js';
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

/**
 * Every call gets a request id (the client's `x-request-id`, or a new one), returned in the
 * response headers; errors become gRPC codes (src/rpc/errors.ts); and the call's service,
 * method, code, tenant and trace id are noted for its log line (src/rpc/call-log.ts).
 */
export function errorInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const requestId = req.header.get('x-request-id')?.slice(0, 100) || randomUUID();
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
      noteCall({ tenantId: tenant(), closeStream: streamOpened() });
      return { ...res, message: observeStream(res.message, failed, () => noteCall({ code: 'OK' })) } as StreamResponse;
    } catch (err) {
      const error = failed(err);
      error.metadata.set('x-request-id', requestId);
      throw error;
    }
  };
}

/** A response stream whose end (or error, mapped to a gRPC code) is noted for the call's log. */
async function* observeStream<T>(messages: AsyncIterable<T>, failed: (err: unknown) => Error, ended: () => void): AsyncIterable<T> {
  try {
    yield* messages;
    ended();
  } catch (err) {
    throw failed(err);
  }
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
