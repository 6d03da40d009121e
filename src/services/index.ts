import type { Config } from '../config/index.js';
import type { Database, Migrator } from '../db/index.js';
import type { Logger } from '../logger.js';
import { AuthService } from './auth.js';
import { ChangeFeed } from './change-feed.js';
import { ClaimWaitService } from './claim-wait.js';
import { LeaseReaper } from './lease-reaper.js';
import { PageTokens } from './page-token.js';
import { ProjectService } from './projects.js';
import { TaskService } from './tasks.js';
import { TenantService } from './tenants.js';
import { WatchService } from './watch.js';
import { WorkerService } from './workers.js';

export interface Services {
  readonly auth: AuthService;
  readonly tenants: TenantService;
  readonly workers: WorkerService;
  readonly projects: ProjectService;
  readonly tasks: TaskService;
  readonly leases: LeaseReaper;
  /** Wake-ups of streams and waiting claims; fed by the database listener (src/app.ts). */
  readonly feed: ChangeFeed;
  readonly watch: WatchService;
  /** ClaimTask with wait_seconds: TaskService.claim, retried as claimable tasks may appear. */
  readonly claimWait: ClaimWaitService;
}

export function createServices(
  db: Database,
  migrator: Migrator,
  config: Pick<Config, 'adminToken' | 'tenancyMode' | 'pageTokenSecret'>,
  logger: Logger,
): Services {
  const pageTokens = new PageTokens(config.pageTokenSecret);
  const feed = new ChangeFeed();
  const tasks = new TaskService(db, pageTokens);
  const leases = new LeaseReaper(db, logger);
  tasks.onLease = (tenantId) => leases.watch(tenantId);
  return {
    auth: new AuthService(db, config.adminToken),
    tenants: new TenantService(db, migrator, config.tenancyMode, logger, pageTokens),
    workers: new WorkerService(db, pageTokens),
    projects: new ProjectService(db, pageTokens),
    tasks,
    leases,
    feed,
    watch: new WatchService(db, feed),
    claimWait: new ClaimWaitService(db, feed, tasks),
  };
}
