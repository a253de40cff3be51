/**
 * `--tasks MODULE`: import a JS module and collect every task definition it exports (named
 * exports, or an array as the default export).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isTaskDefinition, type TaskDefinition } from '../execution/task.js';

export async function loadTasks(modulePath: string): Promise<TaskDefinition[]> {
  const file = resolve(modulePath);
  if (!existsSync(file)) throw new UsageError(`--tasks: no module at ${file}`);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (err) {
    throw new UsageError(`--tasks: could not load ${file}: ${(err as Error).message}`);
  }
  const found: TaskDefinition[] = [];
  for (const [name, value] of Object.entries(mod)) {
    if (isTaskDefinition(value)) found.push(value);
    else if (name === 'default' && Array.isArray(value)) found.push(...value.filter(isTaskDefinition));
  }
  // Isolated runtimes re-import the module on their side.
  const unique = [
    ...new Map(found.map((t) => [t.name, { ...t, module: t.module ?? pathToFileURL(file).href }])).values(),
  ];
  if (unique.length === 0) {
    throw new UsageError(`--tasks: ${file} exports no task definitions (export the results of defineTask)`);
  }
  return unique;
}

/** Bad usage of the CLI: exit code 2. */
export class UsageError extends Error {
  readonly code = 'usage';
}
