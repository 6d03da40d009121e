import type { ServiceImpl } from '@connectrpc/connect';
import { z } from 'zod';
import type { TenantService } from '../../gen/taskapi/v1/tenant_pb.js';
import type { TenantService as Tenants } from '../../services/tenants.js';
import { tenantMessage } from '../convert.js';
import * as v from '../validate.js';

const createTenant = z.object({ name: v.requiredText(v.LIMITS.nameChars), subdomain: v.subdomain });
const list = z.object({ pageSize: v.pageSize, pageToken: v.pageToken });
const createApiKey = z.object({ tenantId: v.id, workerId: v.optionalId, name: v.text(v.LIMITS.nameChars) });
const revokeApiKey = z.object({ tenantId: v.id, apiKeyId: v.id });

export function tenantHandlers(tenants: Tenants): ServiceImpl<typeof TenantService> {
  return {
    async createTenant(req) {
      return { tenant: tenantMessage(await tenants.create(v.check(createTenant, req))) };
    },
    async getTenant(req) {
      return { tenant: tenantMessage(await tenants.get(v.check(z.object({ id: v.id }), req).id)) };
    },
    async listTenants(req) {
      const page = await tenants.list(v.check(list, req));
      return { tenants: page.items.map(tenantMessage), nextPageToken: page.nextPageToken };
    },
    async createApiKey(req) {
      const key = await tenants.createApiKey(v.check(createApiKey, req));
      return { apiKeyId: key.id, secret: key.secret };
    },
    async revokeApiKey(req) {
      await tenants.revokeApiKey(v.check(revokeApiKey, req));
      return {};
    },
  };
}
