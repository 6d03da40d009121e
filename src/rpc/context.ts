/** Per-call values the interceptors hand to the handlers. */
import { createContextKey, type HandlerContext } from '@connectrpc/connect';
import type { Principal } from '../services/auth.js';
import type { Caller } from '../services/caller.js';

export const principalKey = createContextKey<Principal | null>(null, { description: 'authenticated tenant and key' });
export const requestIdKey = createContextKey<string>('', { description: 'request id, also in logs' });

/**
 * The services' view of the call: tenant and actor from the authenticated key, the deadline
 * and the cancellation signal from the call.
 * @throws Error when no principal was set (the service was not behind the auth interceptor).
 */
export function callerOf(ctx: HandlerContext): Caller {
  const principal = ctx.values.get(principalKey);
  if (!principal) throw new Error(`no principal for ${ctx.method.name}`);
  return {
    tenantId: principal.tenantId,
    apiKeyHash: principal.apiKeyHash,
    signal: ctx.signal,
    timeoutMs: ctx.timeoutMs(),
  };
}
