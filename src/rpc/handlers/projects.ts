import type { ServiceImpl } from '@connectrpc/connect';
import { z } from 'zod';
import { invalidArgument } from '../../errors.js';
import type { ProjectService } from '../../gen/taskapi/v1/project_pb.js';
import type { ProjectChanges, ProjectService as Projects } from '../../services/projects.js';
import { callerOf } from '../context.js';
import { PROJECT_INPUT, projectMessage, projectStatus, taskMessage } from '../convert.js';
import * as v from '../validate.js';
import { fieldsToWrite } from './update-mask.js';

const create = z.object({
  ...PROJECT_INPUT,
  // On create, UNSPECIFIED means the default.
  status: v.enumOf(projectStatus.toDomain, 'active'),
  requestId: v.requestId,
});
const createWithTasks = z.object({
  name: PROJECT_INPUT.name,
  description: PROJECT_INPUT.description,
  metadata: PROJECT_INPUT.metadata,
  taskTitles: z.array(v.title).max(v.LIMITS.taskTitles, `at most ${v.LIMITS.taskTitles} titles`),
  createdById: v.optionalId,
  requestId: v.requestId,
});
const list = z.object({ status: v.enumOf(projectStatus.toDomain, null), pageSize: v.pageSize, pageToken: v.pageToken });
/** The project fields an update may write, as the update mask names them. */
const UPDATABLE = (Object.keys(PROJECT_INPUT) as (keyof ProjectChanges)[]).map(v.snake);

export function projectHandlers(projects: Projects): ServiceImpl<typeof ProjectService> {
  return {
    async createProject(req, ctx) {
      return { project: projectMessage(await projects.create(callerOf(ctx), v.check(create, req))) };
    },
    async createProjectWithTasks(req, ctx) {
      const result = await projects.createWithTasks(callerOf(ctx), v.check(createWithTasks, req));
      return { project: projectMessage(result.project), tasks: result.tasks.map(taskMessage) };
    },
    async getProject(req, ctx) {
      return { project: projectMessage(await projects.get(callerOf(ctx), v.check(v.id, req.id, 'id'))) };
    },
    async listProjects(req, ctx) {
      const page = await projects.list(callerOf(ctx), v.check(list, req));
      return { projects: page.items.map(projectMessage), nextPageToken: page.nextPageToken };
    },
    async updateProject(req, ctx) {
      if (!req.project) throw invalidArgument('project', 'is required');
      const id = v.check(v.id, req.project.id, 'project.id');
      const fields = fieldsToWrite(req.updateMask?.paths ?? [], UPDATABLE, req.project, {
        metadata: (p) => p.metadata !== undefined,
      });
      if (fields.length === 0) throw invalidArgument('update_mask', 'names no field to update');
      const picked = Object.fromEntries(
        fields.map((f) => [v.camel(f), PROJECT_INPUT[v.camel(f) as keyof ProjectChanges]]),
      );
      const parsed = v.check(z.object(picked), req.project, 'project') as ProjectChanges & {
        status?: ProjectChanges['status'] | null;
      };
      const project = await projects.update(callerOf(ctx), {
        id,
        changes: { ...parsed, status: parsed.status ?? undefined },
        expectedVersion: v.check(v.expectedVersion, req.expectedVersion, 'expected_version'),
      });
      return { project: projectMessage(project) };
    },
    async deleteProject(req, ctx) {
      await projects.delete(callerOf(ctx), { id: v.check(v.id, req.id, 'id'), force: req.force });
      return {};
    },
    async completeProjectTasks(req, ctx) {
      const count = await projects.completeTasks(callerOf(ctx), v.check(v.id, req.projectId, 'project_id'));
      return { completedCount: BigInt(count) };
    },
  };
}
