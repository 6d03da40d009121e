/**
 * WatchTasks: server streaming over gRPC, gRPC-Web and Connect, as a connect-es async
 * generator. Spread into the TaskService implementation (src/rpc/handlers/tasks.ts).
 */
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { ServiceImpl } from '@connectrpc/connect';
import { z } from 'zod';
import { type TaskEvent, TaskEventSchema } from '../../gen/taskapi/v1/resources_pb.js';
import type { TaskService } from '../../gen/taskapi/v1/task_pb.js';
import type { FeedEvent } from '../../repositories/event-feed.js';
import type { WatchService } from '../../services/watch.js';
import { callerOf } from '../context.js';
import * as v from '../validate.js';

const watchRequest = z.object({ projectId: v.optionalId, afterEventId: v.optionalId });

export const taskEventMessage = (e: FeedEvent): TaskEvent =>
  create(TaskEventSchema, {
    id: e.id,
    taskId: e.taskId,
    projectId: e.projectId,
    kind: e.kind,
    actorId: e.actorId ?? undefined,
    data: e.data,
    createdAt: timestampFromDate(e.createdAt),
    taskVersion: e.taskVersion,
  });

export function watchHandlers(watch: WatchService): Pick<ServiceImpl<typeof TaskService>, 'watchTasks'> {
  return {
    async *watchTasks(req, ctx) {
      const input = v.check(watchRequest, req);
      for await (const event of watch.watch(callerOf(ctx), input)) yield { event: taskEventMessage(event) };
    },
  };
}
