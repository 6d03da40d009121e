import { DbError } from '../db/index.js';
import { AppError } from '../errors.js';
import { describeLimit, LIMITS } from '../limits.js';

/**
 * What a violated constraint means to the client: the field it is about, and the code. Kept
 * next to the services because the constraint names are the migrations' and the fields the API's.
 */
const CONSTRAINTS: Readonly<Record<string, { code: AppError['code']; field: string; message: string }>> = {
  tenants_subdomain_key: {
    code: 'already_exists',
    field: 'subdomain',
    message: 'a tenant with this subdomain already exists',
  },
  workers_handle_key: { code: 'already_exists', field: 'handle', message: 'a worker with this handle already exists' },
  tasks_project_fkey: { code: 'failed_precondition', field: 'project_id', message: 'project not found' },
  tasks_assignee_fkey: { code: 'failed_precondition', field: 'assignee_id', message: 'worker not found' },
  tasks_created_by_fkey: { code: 'failed_precondition', field: 'created_by_id', message: 'worker not found' },
  tasks_parent_fkey: {
    code: 'failed_precondition',
    field: 'parent_task_id',
    message: 'parent task not found in this project',
  },
  tasks_not_own_parent: {
    code: 'failed_precondition',
    field: 'parent_task_id',
    message: 'a task cannot be its own parent',
  },
  api_keys_worker_fkey: { code: 'failed_precondition', field: 'worker_id', message: 'worker not found' },
  tasks_title_length: { code: 'invalid_argument', field: 'title', message: describeLimit.chars(LIMITS.titleChars, 1) },
  tasks_description_size: {
    code: 'invalid_argument',
    field: 'description',
    message: describeLimit.bytes(LIMITS.textBytes),
  },
  tasks_tags_count: { code: 'invalid_argument', field: 'tags', message: describeLimit.items(LIMITS.tags, 'tags') },
  tasks_required_capabilities_strings: {
    code: 'invalid_argument',
    field: 'required_capabilities',
    message: describeLimit.items(LIMITS.capabilities, 'capabilities'),
  },
  tasks_max_attempts_range: {
    code: 'invalid_argument',
    field: 'max_attempts',
    message: describeLimit.range(0, LIMITS.maxAttempts),
  },
  tasks_last_error_size: {
    code: 'invalid_argument',
    field: 'error',
    message: describeLimit.bytes(LIMITS.lastErrorBytes),
  },
  projects_name_length: { code: 'invalid_argument', field: 'name', message: describeLimit.chars(LIMITS.nameChars, 1) },
  projects_description_size: {
    code: 'invalid_argument',
    field: 'description',
    message: describeLimit.bytes(LIMITS.textBytes),
  },
  projects_metadata_object: {
    code: 'invalid_argument',
    field: 'metadata',
    message: describeLimit.bytes(LIMITS.metadataBytes),
  },
  workers_capabilities_count: {
    code: 'invalid_argument',
    field: 'capabilities',
    message: describeLimit.items(LIMITS.capabilities, 'capabilities'),
  },
  workers_handle_format: { code: 'invalid_argument', field: 'handle', message: 'must look like @name' },
  workers_email_format: { code: 'invalid_argument', field: 'email', message: 'is not an email address' },
  tenants_subdomain_format: { code: 'invalid_argument', field: 'subdomain', message: 'must be a DNS label' },
};

/**
 * Turns a constraint violation, or the API-key check's refusal, into the client's error;
 * anything else passes unchanged.
 */
export function explainDbError(err: unknown): unknown {
  if (err instanceof DbError && err.kind === 'refused') return new AppError('unauthenticated', err.message);
  if (err instanceof DbError && err.constraint) {
    const known = CONSTRAINTS[err.constraint];
    if (known) return new AppError(known.code, `${known.field}: ${known.message}`, known.field);
  }
  return err;
}
