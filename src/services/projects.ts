import type { Database } from '../db/index.js';
import type { JsonObject, Project, ProjectChanges, ProjectStatus, TaskView } from '../domain.js';
import { failedPrecondition, notFound } from '../errors.js';
import { appendTaskEvents } from '../repositories/events.js';
import * as projects from '../repositories/projects.js';
import { completeProjectTasks, findProjectTaskRefs, insertTasksWithTitles } from '../repositories/tasks.js';
import { findWorker } from '../repositories/workers.js';
import { type Caller, resolveActor } from './caller.js';
import { idempotent } from './idempotency.js';
import type { Page, PageTokens } from './page-token.js';
import { setWriteEvent, taskEvent } from './task-events.js';
import { loadTaskViews } from './task-views.js';
import { inTenant, readInTenant } from './tenant-transaction.js';
import { checkVersion } from './versions.js';

export type { ProjectChanges };

export interface CreateProjectInput {
  readonly name: string;
  readonly description: string;
  readonly status: ProjectStatus;
  readonly metadata: JsonObject;
  readonly requestId: string;
}

export interface CreateProjectWithTasksInput {
  readonly name: string;
  readonly description: string;
  readonly metadata: JsonObject;
  readonly taskTitles: string[];
  readonly createdById: bigint | null;
  readonly requestId: string;
}

export interface ListProjectsInput {
  readonly status: ProjectStatus | null;
  readonly pageSize: number;
  readonly pageToken: string;
}

export class ProjectService {
  constructor(
    private readonly db: Database,
    private readonly pageTokens: PageTokens,
  ) {}

  /** @throws AppError invalid_argument (request_id reuse). */
  create(caller: Caller, input: CreateProjectInput): Promise<Project> {
    const { requestId, ...fields } = input;
    return inTenant(this.db, caller, (tx) =>
      idempotent(tx, requestId, 'CreateProject', fields, () => projects.insertProject(tx, fields)),
    );
  }

  /**
   * The project and one task per title in one transaction; the tasks in one statement. Any
   * failure leaves nothing behind.
   * @throws AppError failed_precondition (created_by_id names no worker), invalid_argument.
   */
  createWithTasks(
    caller: Caller,
    input: CreateProjectWithTasksInput,
  ): Promise<{ project: Project; tasks: TaskView[] }> {
    const { requestId, ...fields } = input;
    return inTenant(this.db, caller, (tx, actor) => {
      const createdById = resolveActor(actor, input.createdById);
      return idempotent(tx, requestId, 'CreateProjectWithTasks', { ...fields, createdById }, async () => {
        // Checked here, not left to the tasks' foreign key: with no titles there is no task to refuse it.
        if (!(await findWorker(tx, createdById))) throw failedPrecondition('worker not found', 'created_by_id');
        const project = await projects.insertProject(tx, { ...fields, status: 'active' });
        // Their `created` events are written by the same statement (as taskEvent.created would).
        const created = await insertTasksWithTitles(tx, project.id, input.taskTitles, createdById, createdById);
        return { project, tasks: await loadTaskViews(tx, created, 'basic') };
      });
    });
  }

  /** @throws AppError not_found. */
  async get(caller: Caller, id: bigint): Promise<Project> {
    const project = await readInTenant(this.db, caller, (tx) => projects.findProject(tx, id));
    if (!project) throw notFound('project');
    return project;
  }

  /** @throws AppError invalid_argument (page_token). */
  list(caller: Caller, input: ListProjectsInput): Promise<Page<Project>> {
    const paging = this.pageTokens.byId({ tenant: caller.tenantId, list: 'projects', status: input.status }, input);
    return readInTenant(this.db, caller, async (tx) =>
      paging.page(await projects.listProjects(tx, { status: input.status }, paging)),
    );
  }

  /** @throws AppError not_found; aborted (version mismatch). */
  update(
    caller: Caller,
    input: { id: bigint; changes: ProjectChanges; expectedVersion: bigint | null },
  ): Promise<Project> {
    return inTenant(this.db, caller, async (tx) => {
      const current = await projects.findProject(tx, input.id, { forUpdate: true });
      if (!current) throw notFound('project');
      checkVersion('project', current, input.expectedVersion);
      return projects.updateProject(tx, input.id, input.changes);
    });
  }

  /**
   * Deletes the project; with tasks only when `force` (they are deleted with it).
   * @throws AppError not_found; failed_precondition (tasks without force).
   */
  delete(caller: Caller, input: { id: bigint; force: boolean }): Promise<void> {
    return inTenant(this.db, caller, async (tx, actor) => {
      const project = await projects.findProject(tx, input.id, { forUpdate: true });
      if (!project) throw notFound('project');
      if (!input.force && (await projects.projectHasTasks(tx, input.id))) {
        throw failedPrecondition('the project has tasks; pass force to delete them too', 'force');
      }
      // History outlives the tasks: each one deleted with the project gets its event.
      if (input.force) {
        const doomed = await findProjectTaskRefs(tx, input.id);
        await appendTaskEvents(
          tx,
          doomed.map((t) => taskEvent.deleted(t, actor.workerId, { reason: 'project deleted' })),
        );
      }
      await projects.deleteProject(tx, input.id);
    });
  }

  /** Completes every task of the project that is not completed; returns how many. @throws AppError not_found. */
  completeTasks(caller: Caller, projectId: bigint): Promise<number> {
    return inTenant(this.db, caller, async (tx, actor) => {
      const { found, changed } = await completeProjectTasks(tx, projectId);
      if (!found) throw notFound('project');
      await appendTaskEvents(
        tx,
        changed.map((t) =>
          setWriteEvent('completed', t, { status: t.statusBefore }, { status: 'completed' }, actor.workerId),
        ),
      );
      return changed.length;
    });
  }
}
