/** Every service this server serves, registered in one place. */
import type { ConnectRouter } from '@connectrpc/connect';
import { Health } from '../gen/grpc/health/v1/health_pb.js';
import { ServerReflection, file_grpc_reflection_v1_reflection } from '../gen/grpc/reflection/v1/reflection_pb.js';
import {
  ServerReflection as ServerReflectionV1Alpha,
  file_grpc_reflection_v1alpha_reflection,
} from '../gen/grpc/reflection/v1alpha/reflection_pb.js';
import { ProjectService, file_taskapi_v1_project } from '../gen/taskapi/v1/project_pb.js';
import { TaskService, file_taskapi_v1_task } from '../gen/taskapi/v1/task_pb.js';
import { TenantService, file_taskapi_v1_tenant } from '../gen/taskapi/v1/tenant_pb.js';
import { WorkerService, file_taskapi_v1_worker } from '../gen/taskapi/v1/worker_pb.js';
import { file_grpc_health_v1_health } from '../gen/grpc/health/v1/health_pb.js';
import type { Services } from '../services/index.js';
import { projectHandlers } from './handlers/projects.js';
import { taskHandlers } from './handlers/tasks.js';
import { tenantHandlers } from './handlers/tenants.js';
import { watchHandlers } from './handlers/watch.js';
import { workerHandlers } from './handlers/workers.js';
import { correctResponses } from './grpc-compat.js';
import { healthService } from './health.js';
import { reflectionService } from './reflection.js';

export const API_SERVICES = [TenantService, WorkerService, ProjectService, TaskService];

export function routes(services: Services, health: { probe: () => Promise<boolean>; stopping: () => boolean }) {
  const names = API_SERVICES.map((s) => s.typeName);
  const files = [file_taskapi_v1_tenant, file_taskapi_v1_worker, file_taskapi_v1_project, file_taskapi_v1_task, file_grpc_health_v1_health, file_grpc_reflection_v1_reflection, file_grpc_reflection_v1alpha_reflection];
  return (router: ConnectRouter) => {
    router.service(TenantService, tenantHandlers(services.tenants));
    router.service(WorkerService, workerHandlers(services.workers));
    router.service(ProjectService, projectHandlers(services.projects));
    router.service(TaskService, { ...taskHandlers(services.tasks, services.claimWait), ...watchHandlers(services.watch) });
    router.service(Health, healthService({ services: names, ...health }));
    const reflection = reflectionService(files, [...names, Health.typeName, ServerReflection.typeName, ServerReflectionV1Alpha.typeName]);
    router.service(ServerReflection, reflection);
    // Same messages under the older package name (grpcurl and other older clients ask for it).
    router.service(ServerReflectionV1Alpha, reflection as never);
    correctResponses(router.handlers);
  };
}
