/** The SDK: what task authors and API callers import (re-exported from the package root). */
export {
  NonRetryableError,
  type RuntimeName,
  type TaskContext,
  type TaskDefinition,
} from '../execution/task.js';
export { createWorker, Worker, type WorkerHealth, type WorkerOptions } from '../execution/worker.js';
export {
  type ApiKeyView,
  BulkheadApiError,
  BulkheadClient,
  type ClientOptions,
  createClient,
  type JobView,
  type Problem,
  type SubmitOptions,
} from './client.js';
export { defineTask, type TaskOptions } from './define-task.js';
