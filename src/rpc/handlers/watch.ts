/**
 * WatchTasks: server streaming over gRPC, gRPC-Web and Connect, as a connect-es async
 * generator, spread into the TaskService implementation in src/rpc/routes.ts.
 */
import type { ServiceImpl } from '@connectrpc/connect';
import { z } from 'zod';
import type { TaskService } from '../../gen/taskapi/v1/task_pb.js';
import type { WatchService } from '../../services/watch.js';
import { callerOf } from '../context.js';
import { taskEventMessage } from '../convert.js';
import * as v from '../validate.js';

const watchRequest = z.object({ projectId: v.optionalId, afterEventId: v.optionalId });

export function watchHandlers(watch: WatchService): Pick<ServiceImpl<typeof TaskService>, 'watchTasks'> {
  return {
    async *watchTasks(req, ctx) {
      const input = v.check(watchRequest, req);
      for await (const event of watch.watch(callerOf(ctx), input)) yield { event: taskEventMessage(event) };
    },
  };
}
