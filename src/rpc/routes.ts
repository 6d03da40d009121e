/** Every service this server serves, registered in one place. */
import type { DescFile, DescService } from '@bufbuild/protobuf';
import type { ConnectRouter } from '@connectrpc/connect';
import { Health } from '../gen/grpc/health/v1/health_pb.js';
import { ServerReflection } from '../gen/grpc/reflection/v1/reflection_pb.js';
import { ServerReflection as ServerReflectionV1Alpha } from '../gen/grpc/reflection/v1alpha/reflection_pb.js';
import { ProjectService } from '../gen/taskapi/v1/project_pb.js';
import { TaskService } from '../gen/taskapi/v1/task_pb.js';
import { TenantService } from '../gen/taskapi/v1/tenant_pb.js';
import { WorkerService } from '../gen/taskapi/v1/worker_pb.js';
import type { Services } from '../services/index.js';
import { projectHandlers } from './handlers/projects.js';
import { taskHandlers } from './handlers/tasks.js';
import { tenantHandlers } from './handlers/tenants.js';
import { watchHandlers } from './handlers/watch.js';
import { workerHandlers } from './handlers/workers.js';
import { healthService } from './health.js';
import { reflectionService } from './reflection.js';

export const API_SERVICES = [TenantService, WorkerService, ProjectService, TaskService];

/** A service and its implementation (a connect-es ServiceImpl). */
export type ServiceEntry = readonly [DescService, object];

/**
 * Every served service with its implementation: the API, health and reflection (which
 * describes every file that declares one of them, so `buf curl` and grpcurl need no protos).
 */
export function serviceEntries(
  services: Services,
  health: { probe: () => Promise<boolean>; stopping: () => boolean },
): ServiceEntry[] {
  const served = [...API_SERVICES, Health, ServerReflection, ServerReflectionV1Alpha];
  const files = [...new Set<DescFile>(served.map((s) => s.file))];
  const reflection = reflectionService(
    files,
    served.map((s) => s.typeName),
  );
  return [
    [TenantService, tenantHandlers(services.tenants)],
    [WorkerService, workerHandlers(services.workers)],
    [ProjectService, projectHandlers(services.projects)],
    [TaskService, { ...taskHandlers(services.tasks, services.claimWait), ...watchHandlers(services.watch) }],
    [Health, healthService({ services: API_SERVICES.map((s) => s.typeName), ...health })],
    [ServerReflection, reflection],
    // Same messages under the older package name (grpcurl and other older clients ask for it).
    [ServerReflectionV1Alpha, reflection],
  ];
}

/** The connect-node router for the same services (the calls the direct path leaves to it). */
export function routes(entries: readonly ServiceEntry[]) {
  return (router: ConnectRouter) => {
    for (const [service, impl] of entries) router.service(service, impl as never);
  };
}
