import type { Config } from '../config/index.js';
import type { Database, Migrator } from '../db/index.js';
import type { Logger } from '../logger.js';
import { AuthService } from './auth.js';
import { PageTokens } from './page-token.js';
import { ProjectService } from './projects.js';
import { TaskService } from './tasks.js';
import { TenantService } from './tenants.js';
import { WorkerService } from './workers.js';

export interface Services {
  readonly auth: AuthService;
  readonly tenants: TenantService;
  readonly workers: WorkerService;
  readonly projects: ProjectService;
  readonly tasks: TaskService;
}

export function createServices(db: Database, migrator: Migrator, config: Pick<Config, 'adminToken' | 'tenancyMode' | 'pageTokenSecret'>, logger: Logger): Services {
  const pageTokens = new PageTokens(config.pageTokenSecret);
  return {
    auth: new AuthService(db, config.adminToken),
    tenants: new TenantService(db, migrator, config.tenancyMode, logger, pageTokens),
    workers: new WorkerService(db, pageTokens),
    projects: new ProjectService(db, pageTokens),
    tasks: new TaskService(db, pageTokens),
  };
}
