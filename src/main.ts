/**
 * Entry point: `npm start`. Reads the configuration (exiting with one message naming every bad
 * variable), starts the service, and stops it gracefully on SIGTERM/SIGINT.
 */

import { startApp } from './app.js';
import { loadConfigOrExit } from './config/index.js';
import { createLogger, flushLogs } from './logger.js';

async function main(): Promise<void> {
  const config = loadConfigOrExit();
  const logger = createLogger(config.logLevel);
  // The process must never die of a client's or the database's fault; log what slips through.
  process.on('unhandledRejection', (err) => logger.error('unhandled rejection', { err }));
  process.on('uncaughtException', (err) => logger.error('uncaught exception', { err }));
  // Node prints process warnings (deprecations, MaxListenersExceeded, ...) as plain text on
  // stderr through its own 'warning' listener; they belong in the JSON log like everything else.
  process.removeAllListeners('warning');
  process.on('warning', (warning) => logger.warn('process warning', { err: warning }));

  let app: Awaited<ReturnType<typeof startApp>>;
  try {
    app = await startApp(config, logger);
  } catch (err) {
    logger.error('could not start', { err });
    return exitAfterLogs(1);
  }
  let signals = 0;
  const stop = (signal: string) => {
    signals++;
    if (signals > 1) {
      logger.warn('second signal: exiting now', { signal });
      process.exit(1);
    }
    logger.info('shutting down', { signal });
    app.stop().then(
      () => exitAfterLogs(0),
      (err) => {
        logger.error('shutdown failed', { err });
        exitAfterLogs(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

/** Exits once the batched log lines are written (see src/logger.ts). */
function exitAfterLogs(code: number): void {
  void flushLogs().finally(() => process.exit(code));
}

void main();
