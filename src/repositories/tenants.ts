import type { Tx } from '../db/index.js';
import type { Tenant } from '../domain.js';
import { TENANT_COLUMNS, type TenantRow, toTenant } from './rows.js';
import { type IdWindow, idPageQuery, Params } from './sql.js';

export async function insertTenant(tx: Tx, input: { name: string; subdomain: string }): Promise<Tenant> {
  const row = await tx.one<TenantRow>(
    `insert into tenants (name, subdomain) values ($1, $2) returning ${TENANT_COLUMNS}`,
    [input.name, input.subdomain],
  );
  return toTenant(row);
}

export async function findTenantById(tx: Tx, id: bigint): Promise<Tenant | undefined> {
  const row = await tx.maybeOne<TenantRow>(`select ${TENANT_COLUMNS} from tenants where id = $1::bigint`, [
    id.toString(),
  ]);
  return row && toTenant(row);
}

export async function findTenantBySubdomain(tx: Tx, subdomain: string): Promise<Tenant | undefined> {
  const row = await tx.maybeOne<TenantRow>(`select ${TENANT_COLUMNS} from tenants where subdomain = $1`, [subdomain]);
  return row && toTenant(row);
}

/** Tenants in id order, a window at a time. */
export async function listTenants(tx: Tx, window: IdWindow): Promise<Tenant[]> {
  const q = new Params();
  const rows = await tx.many<TenantRow>(idPageQuery(q, `select ${TENANT_COLUMNS} from tenants`, [], window), q.values);
  return rows.map(toTenant);
}

/** Removes a tenant that was just created (schema mode, when its schema could not be made). */
export async function deleteTenant(tx: Tx, id: bigint): Promise<void> {
  await tx.exec('delete from tenants where id = $1::bigint', [id.toString()]);
}
