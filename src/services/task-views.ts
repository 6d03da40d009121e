/**
 * Relations of tasks, loaded in batch: one statement per relation for the whole page, however
 * many tasks it holds (never one per task).
 */
import type { Tx } from '../db/index.js';
import type { Project, Task, TaskView, TaskViewKind } from '../domain.js';
import { findProjectsByIds } from '../repositories/projects.js';
import { findSubtasks, findTasksByIds } from '../repositories/tasks.js';
import { findWorkersByIds } from '../repositories/workers.js';

export async function loadTaskViews(tx: Tx, tasks: readonly Task[], view: TaskViewKind): Promise<TaskView[]> {
  if (tasks.length === 0) return [];
  let related: { projects: Map<bigint, Project>; parents: Map<bigint, Task>; children: Map<bigint, Task[]> } | null =
    null;
  if (view === 'full') {
    const parentIds = tasks.flatMap((t) => (t.parentTaskId === null ? [] : [t.parentTaskId]));
    const [projects, parents, subtasks] = [
      await findProjectsByIds(
        tx,
        tasks.map((t) => t.projectId),
      ),
      await findTasksByIds(tx, parentIds),
      await findSubtasks(
        tx,
        tasks.map((t) => t.id),
      ),
    ];
    const children = new Map<bigint, Task[]>();
    for (const s of subtasks) {
      const list = children.get(s.parentTaskId!) ?? [];
      list.push(s);
      children.set(s.parentTaskId!, list);
    }
    related = { projects, parents, children };
  }
  // One statement for the workers of every task shown: the page, and in the full view its
  // parents and subtasks too (they are Tasks, with assignee and created_by).
  const all = [...tasks, ...(related ? [...related.parents.values(), ...[...related.children.values()].flat()] : [])];
  const workerIds = new Set<bigint>();
  for (const t of all) {
    workerIds.add(t.createdById);
    if (t.assigneeId !== null) workerIds.add(t.assigneeId);
  }
  const workers = await findWorkersByIds(tx, workerIds);
  const basic = (t: Task): TaskView => ({
    ...t,
    assignee: t.assigneeId === null ? null : (workers.get(t.assigneeId) ?? null),
    createdBy: workers.get(t.createdById) ?? null,
  });
  if (related === null) return tasks.map(basic);
  const { projects, parents, children } = related;
  return tasks.map((t) => {
    const parent = t.parentTaskId === null ? undefined : parents.get(t.parentTaskId);
    return {
      ...basic(t),
      project: projects.get(t.projectId) ?? null,
      parent: parent ? basic(parent) : null,
      subtasks: (children.get(t.id) ?? []).map(basic),
    };
  });
}
