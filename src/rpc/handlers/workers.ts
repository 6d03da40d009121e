import type { ServiceImpl } from '@connectrpc/connect';
import { z } from 'zod';
import { invalidArgument } from '../../errors.js';
import type { WorkerService } from '../../gen/taskapi/v1/worker_pb.js';
import type { WorkerService as Workers } from '../../services/workers.js';
import { callerOf } from '../context.js';
import { workerMessage, workerType } from '../convert.js';
import * as v from '../validate.js';

const create = z.object({
  handle: v.handle,
  type: v.enumOf(workerType.toDomain, 'human'),
  email: v.email,
  capabilities: v.capabilities,
  requestId: v.requestId,
});
const list = z.object({ type: v.enumOf(workerType.toDomain, null), pageSize: v.pageSize, pageToken: v.pageToken });

export function workerHandlers(workers: Workers): ServiceImpl<typeof WorkerService> {
  return {
    async createWorker(req, ctx) {
      return { worker: workerMessage(await workers.create(callerOf(ctx), v.check(create, req))) };
    },
    async getWorker(req, ctx) {
      const { lookup } = req;
      if (lookup.case === 'id') {
        return { worker: workerMessage(await workers.get(callerOf(ctx), { id: v.check(v.id, lookup.value, 'id') })) };
      }
      if (lookup.case === 'handle') {
        return {
          worker: workerMessage(
            await workers.get(callerOf(ctx), { handle: v.check(v.handle, lookup.value, 'handle') }),
          ),
        };
      }
      throw invalidArgument('id', 'set id or handle');
    },
    async listWorkers(req, ctx) {
      const page = await workers.list(callerOf(ctx), v.check(list, req));
      return { workers: page.items.map(workerMessage), nextPageToken: page.nextPageToken };
    },
    async deleteWorker(req, ctx) {
      await workers.delete(callerOf(ctx), v.check(v.id, req.id, 'id'));
      return {};
    },
  };
}
