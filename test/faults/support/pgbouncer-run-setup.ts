/**
 * Global setup of `npm run test:pgbouncer`: a PgBouncer (transaction pooling) in front of the
 * test server, whose address the test helpers find in TEST_POOLER_URL. The templates are still
 * built, and each file's database cloned, over the direct URL (migrations hold a session
 * advisory lock, which a transaction pooler cannot keep).
 */
import { setup as faultsSetup } from './global-setup.js';
import { PgBouncer } from './pgbouncer.js';

export async function setup(): Promise<() => Promise<void>> {
  const sweep = faultsSetup();
  const server = new URL(process.env.TEST_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/test');
  let bouncer: PgBouncer;
  try {
    bouncer = await PgBouncer.start({
      serverHost: server.hostname,
      serverPort: Number(server.port || 5432),
      poolSize: 20,
    });
  } catch (err) {
    sweep();
    throw err;
  }
  process.env.TEST_POOLER_URL = `postgresql://${server.username || 'postgres'}@127.0.0.1:${bouncer.port}/`;
  process.env.TEST_POOLER_ADMIN_URL = bouncer.url('pgbouncer');
  return async () => {
    // A pooler refusing logins (the server at max_connections, say) shows up in the tests only as
    // UNAVAILABLE: print what PgBouncer itself said, so the cause is in the CI log.
    const problems = bouncer.problems();
    if (problems.length > 0) console.error(`PgBouncer reported:\n${problems.join('\n')}`);
    await bouncer.destroy();
    sweep();
  };
}
