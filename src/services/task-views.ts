/**
 * Relations of tasks, loaded in batch: one statement per relation for the whole page, however
 * many tasks it holds (never one per task).
 */
import type { Tx } from '../db/index.js';
import type { Task, TaskView, TaskViewKind } from '../domain.js';
import { findProjectsByIds } from '../repositories/projects.js';
import { findSubtasks, findTasksByIds } from '../repositories/tasks.js';
import { findWorkersByIds } from '../repositories/workers.js';

export async function loadTaskViews(tx: Tx, tasks: readonly Task[], view: TaskViewKind): Promise<TaskView[]> {
  if (tasks.length === 0) return [];
  const workerIds = new Set<bigint>();
  for (const t of tasks) {
    workerIds.add(t.createdById);
    if (t.assigneeId !== null) workerIds.add(t.assigneeId);
  }
  const workers = await findWorkersByIds(tx, workerIds);
  const basic = (t: Task): TaskView => ({
    ...t,
    assignee: t.assigneeId === null ? null : (workers.get(t.assigneeId) ?? null),
    createdBy: workers.get(t.createdById) ?? null,
  });
  if (view === 'basic') return tasks.map(basic);

  const parentIds = tasks.flatMap((t) => (t.parentTaskId === null ? [] : [t.parentTaskId]));
  const [projects, parents, subtasks] = [
    await findProjectsByIds(tx, tasks.map((t) => t.projectId)),
    await findTasksByIds(tx, parentIds),
    await findSubtasks(tx, tasks.map((t) => t.id)),
  ];
  const children = new Map<bigint, Task[]>();
  for (const s of subtasks) {
    const list = children.get(s.parentTaskId!) ?? [];
    list.push(s);
    children.set(s.parentTaskId!, list);
  }
  return tasks.map((t) => ({
    ...basic(t),
    project: projects.get(t.projectId) ?? null,
    parent: t.parentTaskId === null ? null : (parents.get(t.parentTaskId) ?? null),
    subtasks: children.get(t.id) ?? [],
  }));
}
