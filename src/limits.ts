/**
 * Every size and range limit of stored or requested values, in one place: the zod schemas of
 * the RPC layer (src/rpc/validate.ts), the messages clients read, and the services' translation
 * of violated CHECKs all read them here, and test/integration/limits.test.ts holds the
 * migrations' CHECK constraints to the same numbers. Change a limit here and in a migration.
 */
export const LIMITS = {
  titleChars: 500,
  nameChars: 200,
  textBytes: 64 * 1024,
  metadataBytes: 64 * 1024,
  tags: 50,
  tagChars: 64,
  capabilities: 50,
  requestIdChars: 200,
  taskTitles: 1000,
  handleChars: 64,
  emailChars: 254,
  lastErrorBytes: 8 * 1024,
  maxAttempts: 1000,
  leaseSeconds: { min: 1, max: 86_400, default: 300 },
  waitSeconds: { max: 60 },
  retryAfterSeconds: { max: 86_400 },
  treeDepth: { max: 100 },
} as const;

/** The wording of limits, shared by input validation and constraint errors. */
export const describeLimit = {
  chars: (max: number, min = 0) =>
    min > 0 ? `must be ${min} to ${max} characters` : `must be at most ${max} characters`,
  bytes: (max: number) => `must be at most ${max / 1024} KiB`,
  items: (max: number, what: string) => `at most ${max} ${what}`,
  range: (min: number, max: number) => `must be between ${min} and ${max}`,
};
