/**
 * `npm run migrate -- up [N] | down [N|all] | status`: manages the schema by hand with the
 * service's own configuration (DATABASE_URL, TENANCY_MODE). `up` applies every pending
 * migration (or N), `down` reverts the last one (or N, or all), `status` lists applied and
 * pending migrations per schema.
 */
import { loadConfigOrExit, redactDatabaseUrl } from '../config/index.js';
import { type OpenDatabase, openDatabase } from '../db/index.js';
import { createLogger, flushLogs } from '../logger.js';

const USAGE = 'usage: npm run migrate -- up [count] | down [count|all] | status';

async function main(argv: string[]): Promise<number> {
  const [command, countArg] = argv;
  if (command !== 'up' && command !== 'down' && command !== 'status') {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  let count: number | undefined;
  if (countArg !== undefined) {
    if (countArg === 'all') count = Infinity;
    else if (/^\d+$/.test(countArg) && Number(countArg) > 0) count = Number(countArg);
    else {
      process.stderr.write(`${USAGE}\n`);
      return 2;
    }
  }
  const config = loadConfigOrExit();
  const logger = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel);
  let db: OpenDatabase;
  try {
    // In embedded mode this refuses a data directory that a running service holds.
    db = await openDatabase(config, logger);
  } catch (err) {
    process.stderr.write(`cannot open the database: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  try {
    process.stdout.write(`database: ${redactDatabaseUrl(config.database)} (tenancy: ${config.tenancyMode})\n`);
    if (command === 'status') {
      for (const s of await db.migrator.status()) {
        process.stdout.write(`schema ${s.schema}\n`);
        for (const name of s.applied) process.stdout.write(`  applied  ${name}\n`);
        for (const name of s.pending) process.stdout.write(`  pending  ${name}\n`);
        if (s.pending.length === 0) process.stdout.write('  (up to date)\n');
      }
      return 0;
    }
    const done = await db.migrator.run({ direction: command, count });
    for (const name of done) process.stdout.write(`${command === 'up' ? 'applied' : 'reverted'}  ${name}\n`);
    if (done.length === 0) process.stdout.write('nothing to do\n');
    return 0;
  } catch (err) {
    process.stderr.write(`migration failed: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  } finally {
    await db.close();
  }
}

main(process.argv.slice(2)).then(async (code) => {
  await flushLogs();
  process.exit(code);
});
