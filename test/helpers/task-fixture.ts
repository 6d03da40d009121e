/** The tenants, workers and projects the TaskService suites start from, and their shortcuts. */
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { Project, TaskSchema, TaskStatus, Worker } from '../../src/gen/taskapi/v1/resources_pb.js';
import type { CreateTaskRequestSchema, ListTasksRequestSchema, TaskView } from '../../src/gen/taskapi/v1/task_pb.js';
import type { Protocol, TestApp, TestTenant } from './app.js';
import { type ApiClient, WorkerType } from './clients.js';
import { foreignWorkerId, listAll, mask } from './expect-rpc.js';

export interface TaskFixture {
  /** The main tenant: its key has no worker, so created_by_id is explicit. */
  api: ApiClient;
  /** A tenant whose key is bound to a worker. */
  keyed: TestTenant<true>;
  keyedApi: ApiClient;
  /** A third tenant, and one of its workers whose id names no worker of the main tenant. */
  other: ApiClient;
  otherWorkerId: bigint;
  owner: Worker;
  w1: Worker;
  w2: Worker;
  project: Project;
  otherProject: Project;
  /** CreateTask in `project`, created by `owner`, unless `fields` say otherwise. */
  createTask(fields: MessageInitShape<typeof CreateTaskRequestSchema>, client?: ApiClient): Promise<Task>;
  getTask(id: bigint, view?: TaskView): Promise<Task>;
  /** UpdateTask writing `paths` (comma-separated, as `mask` takes them). */
  update(task: MessageInitShape<typeof TaskSchema>, paths: string, expectedVersion?: bigint): Promise<Task>;
  setStatus(id: bigint, status: TaskStatus): Promise<Task>;
  /** The ids of one page of ListTasks (page size 500 unless given). */
  list(request: MessageInitShape<typeof ListTasksRequestSchema>): Promise<bigint[]>;
  countTasks(projectId: bigint): Promise<number>;
}

type Task = Awaited<ReturnType<ApiClient['TaskService']['getTask']>>['task'];

export const ids = (items: readonly { id: bigint }[]): bigint[] => items.map((x) => x.id);

export async function taskFixture(t: TestApp, protocol: Protocol): Promise<TaskFixture> {
  const api = t.client(protocol, (await t.tenant()).headers);
  const keyed = await t.tenant({ withWorker: true });
  const other = t.client(protocol, (await t.tenant()).headers);
  const owner = (await api.WorkerService.createWorker({ handle: '@owner' })).worker;
  const w1 = (await api.WorkerService.createWorker({ handle: '@w1', email: 'w1@example.com' })).worker;
  const w2 = (await api.WorkerService.createWorker({ handle: '@w2', type: WorkerType.AGENT, capabilities: ['code'] }))
    .worker;
  const project = (await api.ProjectService.createProject({ name: 'Main' })).project;
  const update: TaskFixture['update'] = async (task, paths, expectedVersion) =>
    (await api.TaskService.updateTask({ task, updateMask: mask(paths), expectedVersion })).task;
  return {
    api,
    keyed,
    keyedApi: t.client(protocol, keyed.headers),
    other,
    otherWorkerId: await foreignWorkerId(api, other),
    owner,
    w1,
    w2,
    project,
    otherProject: (await api.ProjectService.createProject({ name: 'Other' })).project,
    createTask: async (fields, client = api) =>
      (await client.TaskService.createTask({ projectId: project.id, createdById: owner.id, ...fields })).task,
    getTask: async (id, view) => (await api.TaskService.getTask({ id, view })).task,
    update,
    setStatus: (id, status) => update({ id, status }, 'status'),
    list: async (request) => ids((await api.TaskService.listTasks({ pageSize: 500, ...request })).tasks),
    countTasks: async (projectId) =>
      (
        await listAll(
          (pageToken) => api.TaskService.listTasks({ projectId, pageSize: 500, pageToken }),
          (r) => r.tasks,
        )
      ).items.length,
  };
}
