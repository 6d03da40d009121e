/** What the seed leaves behind for the load generators: real tenants, real keys, row ids to spread calls over. */
export interface TenantData {
  readonly id: string;
  /** A real API key, made by TenantService. */
  readonly key: string;
  readonly workerIds: readonly string[];
  readonly projectIds: readonly string[];
  /** A fixed pseudo-random sample of the tenant's task ids (top-level tasks and subtasks). */
  readonly taskIds: readonly string[];
}

/** The contended-claim queue: one project of one tenant, and agents with keys bound to them. */
export interface ClaimData {
  readonly tenantId: string;
  readonly projectId: string;
  /** What every agent can do (the raw baseline passes them; the service reads the worker's). */
  readonly capabilities: readonly string[];
  readonly agents: readonly { readonly workerId: string; readonly key: string }[];
}

/** The watched project: its tasks are updated by a writer while streams watch it. */
export interface WatchData {
  readonly tenantId: string;
  readonly key: string;
  readonly projectId: string;
  readonly taskIds: readonly string[];
}

export interface BenchData {
  readonly tenants: readonly TenantData[];
  /** Pairs of tags that occur together often enough to fill a page (tags_all filters). */
  readonly tagPairs: readonly (readonly [string, string])[];
  /** Absent where the section does not set it up (PGlite). */
  readonly claim?: ClaimData;
  readonly watch?: WatchData;
}

/** An agent of the claim queue as a caller: its tenant and its own key, bound to its worker. */
export const agentCaller = (claim: ClaimData, i: number): TenantData => {
  const agent = claim.agents[i % claim.agents.length]!;
  return {
    id: claim.tenantId,
    key: agent.key,
    workerIds: [agent.workerId],
    projectIds: [claim.projectId],
    taskIds: [],
  };
};

/** Deterministic random numbers (mulberry32): the same run asks for the same rows. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const pick = <T>(rnd: () => number, list: readonly T[]): T => list[Math.floor(rnd() * list.length)]!;
