import type { Database } from '../db/index.js';
import type { Worker, WorkerType } from '../domain.js';
import { failedPrecondition, notFound } from '../errors.js';
import { appendTaskEvents } from '../repositories/events.js';
import { unassignWorkerTasks } from '../repositories/tasks.js';
import * as workers from '../repositories/workers.js';
import type { Caller } from './caller.js';
import { idempotent } from './idempotency.js';
import type { Page, PageTokens } from './page-token.js';
import { setWriteEvent } from './task-events.js';
import { inTenant, readInTenant } from './tenant-transaction.js';

export interface CreateWorkerInput {
  readonly handle: string;
  readonly type: WorkerType;
  readonly email: string | null;
  readonly capabilities: string[];
  readonly requestId: string;
}

export interface ListWorkersInput {
  readonly type: WorkerType | null;
  readonly pageSize: number;
  readonly pageToken: string;
}

export class WorkerService {
  constructor(
    private readonly db: Database,
    private readonly pageTokens: PageTokens,
  ) {}

  /** @throws AppError already_exists (handle), invalid_argument (request_id reuse). */
  create(caller: Caller, input: CreateWorkerInput): Promise<Worker> {
    const { requestId, ...fields } = input;
    return inTenant(this.db, caller, (tx) =>
      idempotent(tx, requestId, 'CreateWorker', fields, () => workers.insertWorker(tx, fields)),
    );
  }

  /** @throws AppError not_found. */
  async get(caller: Caller, key: { id: bigint } | { handle: string }): Promise<Worker> {
    const worker = await readInTenant(this.db, caller, (tx) =>
      'id' in key ? workers.findWorker(tx, key.id) : workers.findWorkerByHandle(tx, key.handle),
    );
    if (!worker) throw notFound('worker');
    return worker;
  }

  /** @throws AppError invalid_argument (page_token). */
  list(caller: Caller, input: ListWorkersInput): Promise<Page<Worker>> {
    const paging = this.pageTokens.byId({ tenant: caller.tenantId, list: 'workers', type: input.type }, input);
    return readInTenant(this.db, caller, async (tx) =>
      paging.page(await workers.listWorkers(tx, { type: input.type }, paging)),
    );
  }

  /**
   * Deletes the worker and unassigns its tasks (each unassignment is a new task version with
   * its history event).
   * @throws AppError not_found; failed_precondition when the worker created tasks.
   */
  delete(caller: Caller, id: bigint): Promise<void> {
    return inTenant(this.db, caller, async (tx, actor) => {
      // Locked first: assignments and creations referencing the worker (their foreign key checks
      // take a key-share lock on it) either finish before this delete looks, or wait and then
      // fail cleanly; none is silently undone by ON DELETE SET NULL.
      const worker = await workers.findWorker(tx, id, { forUpdate: true });
      if (!worker) throw notFound('worker');
      if (await workers.workerCreatedTasks(tx, id)) {
        throw failedPrecondition('the worker created tasks and cannot be deleted', 'id');
      }
      const unassigned = await unassignWorkerTasks(tx, id);
      await appendTaskEvents(
        tx,
        unassigned.map((t) =>
          setWriteEvent('unassigned', t, { assigneeId: id }, { assigneeId: null }, actor.workerId, {
            reason: 'worker deleted',
          }),
        ),
      );
      await workers.deleteWorker(tx, id);
    });
  }
}
