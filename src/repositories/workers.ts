import type { Tx } from '../db/index.js';
import type { Worker, WorkerType } from '../domain.js';
import { idList, WORKERS } from './rows.js';
import { type IdWindow, idPageQuery, Params } from './sql.js';
import { tenantOf } from './tenant-scope.js';

type Row = Record<string, unknown>;

export interface NewWorker {
  readonly handle: string;
  readonly type: WorkerType;
  readonly email: string | null;
  readonly capabilities: string[];
}

export async function insertWorker(tx: Tx, w: NewWorker): Promise<Worker> {
  const row = await tx.one<Row>(
    `insert into workers (tenant_id, handle, type, email, capabilities)
     values ($1::bigint, $2, $3, $4, $5::jsonb) returning ${WORKERS.row()}`,
    [tenantOf(tx), w.handle, w.type, w.email, JSON.stringify(w.capabilities)],
  );
  return WORKERS.parse(row);
}

export async function findWorker(
  tx: Tx,
  id: bigint,
  options: { forUpdate?: boolean } = {},
): Promise<Worker | undefined> {
  const row = await tx.maybeOne<Row>(
    `select ${WORKERS.row()} from workers where tenant_id = $1::bigint and id = $2::bigint${options.forUpdate ? ' for update' : ''}`,
    [tenantOf(tx), id.toString()],
  );
  return row && WORKERS.parse(row);
}

/** Handles are matched regardless of case, as the unique index compares them. */
export async function findWorkerByHandle(tx: Tx, handle: string): Promise<Worker | undefined> {
  const row = await tx.maybeOne<Row>(
    `select ${WORKERS.row()} from workers where tenant_id = $1::bigint and handle_key = lower($2)`,
    [tenantOf(tx), handle],
  );
  return row && WORKERS.parse(row);
}

/** Every worker of `ids` in one statement, keyed by id. */
export async function findWorkersByIds(tx: Tx, ids: Iterable<bigint>): Promise<Map<bigint, Worker>> {
  const list = idList(ids);
  if (list.length === 0) return new Map();
  const rows = await tx.many<Row>(
    `select ${WORKERS.row()} from workers where tenant_id = $1::bigint and id = any($2::bigint[])`,
    [tenantOf(tx), list],
  );
  return new Map(
    rows.map((r) => {
      const w = WORKERS.parse(r);
      return [w.id, w];
    }),
  );
}

/** Workers (of one type, or all) in id order, a window at a time. */
export async function listWorkers(tx: Tx, filter: { type: WorkerType | null }, window: IdWindow): Promise<Worker[]> {
  const q = new Params();
  const where = [`tenant_id = ${q.bind(tenantOf(tx), 'bigint')}`];
  if (filter.type !== null) where.push(`type = ${q.bind(filter.type, 'text')}`);
  const rows = await tx.many<Row>(idPageQuery(q, `select ${WORKERS.row()} from workers`, where, window), q.values);
  return rows.map(WORKERS.parse);
}

export async function deleteWorker(tx: Tx, id: bigint): Promise<boolean> {
  return (
    (await tx.exec(`delete from workers where tenant_id = $1::bigint and id = $2::bigint`, [
      tenantOf(tx),
      id.toString(),
    ])) > 0
  );
}

/** Whether the worker is the creator of any task (such a worker cannot be deleted). */
export async function workerCreatedTasks(tx: Tx, id: bigint): Promise<boolean> {
  const row = await tx.one<{ found: boolean }>(
    `select exists (select 1 from tasks where tenant_id = $1::bigint and created_by_id = $2::bigint) as found`,
    [tenantOf(tx), id.toString()],
  );
  return row.found;
}
