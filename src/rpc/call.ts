/**
 * What every call goes through before and after its handler, whichever path serves it (the
 * direct gRPC/Connect path in direct-handler.ts, or connect-node's for everything else): a
 * request id, authentication, and the mapping of errors to RPC codes. The connect interceptors
 * (interceptors.ts) and the direct path both call these functions, so the rules live once.
 */
import { randomUUID } from 'node:crypto';
import { TenantService } from '../gen/taskapi/v1/tenant_pb.js';
import type { AuthService, Principal } from '../services/auth.js';

/** Reads one request header (lower-case name); null when absent. */
export type HeaderGet = (name: string) => string | null;

/** Services anyone may call: health checks and reflection. */
const PUBLIC_PACKAGES = ['grpc.health.v1.', 'grpc.reflection.'];

/** The client's `x-request-id` (bounded), or a new one. */
export function requestIdOf(header: HeaderGet): string {
  return header('x-request-id')?.slice(0, 100) || randomUUID();
}

/**
 * Who is calling: null for public services and for TenantService (admin token checked here),
 * else the tenant and API key of the call.
 * @throws AppError unauthenticated, not_found, permission_denied, invalid_argument (AuthService).
 */
export async function authorize(
  auth: AuthService,
  serviceName: string,
  header: HeaderGet,
  host: string | null,
  signal: AbortSignal,
): Promise<Principal | null> {
  if (PUBLIC_PACKAGES.some((p) => serviceName.startsWith(p))) return null;
  const authorization = header('authorization');
  if (serviceName === TenantService.typeName) {
    auth.requireAdmin(authorization);
    return null;
  }
  return auth.authenticate({ tenantId: header('x-tenant-id'), host, authorization }, signal);
}
