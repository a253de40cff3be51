/**
 * The worker side of the `thread` and `process` runtimes: a pool of runners (threads or child
 * processes), each running one attempt at a time. A runner that crashes or is killed is replaced;
 * an aborted attempt is asked to stop, then killed after `killGraceMs` if it has not.
 */
import { fileURLToPath } from 'node:url';
import type { TaskDefinition } from '../task.js';
import { deserializeError, type FromRunner, serializeError, type ToRunner } from './protocol.js';
import { type RunRequest, type Runtime, RuntimeCrashedError } from './runtime.js';

/** The runner script (compiled next to this file). */
export const RUNNER_PATH = fileURLToPath(new URL('./runner.js', import.meta.url));

/** A started runner: a thread or a process speaking the runner protocol. */
export interface Channel {
  send(message: ToRunner): void;
  onMessage(listener: (message: FromRunner) => void): void;
  /** Called once when the runner is gone; `error` says why when it did not exit cleanly. */
  onExit(listener: (error?: RuntimeCrashedError) => void): void;
  kill(): void;
}

export interface PoolOptions {
  /** Most runners alive at once. */
  size: number;
  /** Start a runner for tasks of this configuration. */
  spawn(task: TaskDefinition): Channel;
  /** Runners are only reused for tasks with the same key (e.g. same memory limit and egress). */
  keyOf(task: TaskDefinition): string;
}

interface Slot {
  key: string;
  channel: Channel;
  ready: Promise<void>;
  busy: boolean;
  dead: boolean;
  current?: ((m: FromRunner) => void) | undefined;
  exit?: ((err?: RuntimeCrashedError) => void) | undefined;
}

let nextId = 0;

export class IsolatedPool implements Runtime {
  private readonly slots = new Set<Slot>();
  private readonly waiting: (() => void)[] = [];
  private closed = false;

  constructor(
    readonly name: 'thread' | 'process',
    private readonly options: PoolOptions,
  ) {}

  async run(req: RunRequest): Promise<unknown> {
    if (!req.task.module) {
      throw new Error(
        `task '${req.task.name}' uses the ${this.name} runtime but was not loaded from a module: load it with --tasks, or pass module: import.meta.url to defineTask`,
      );
    }
    const slot = await this.acquire(req.task);
    const id = ++nextId;
    try {
      return await this.runOn(slot, id, req, req.task.module);
    } finally {
      slot.busy = false;
      slot.current = undefined;
      slot.exit = undefined;
      if (slot.dead) this.slots.delete(slot);
      this.waiting.shift()?.();
    }
  }

  private runOn(slot: Slot, id: number, req: RunRequest, module: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      let aborted = false;
      let killTimer: NodeJS.Timeout | undefined;
      const finish = (fn: () => void) => {
        clearTimeout(killTimer);
        req.signal.removeEventListener('abort', onAbort);
        fn();
      };
      const onAbort = () => {
        aborted = true;
        slot.channel.send({
          t: 'abort',
          id,
          reason: String((req.signal.reason as Error)?.message ?? 'aborted'),
        });
        killTimer = setTimeout(() => {
          req.logger.warn(
            { graceMs: req.task.killGraceMs },
            `handler ignored its abort; killing the ${this.name}`,
          );
          slot.channel.kill();
        }, req.task.killGraceMs);
      };
      slot.exit = (err) =>
        finish(() =>
          reject(err ?? new RuntimeCrashedError('runtime_crashed', `the ${this.name} exited mid-attempt`)),
        );
      slot.current = (m) => {
        if (!('id' in m) || m.id !== id) return;
        if (m.t === 'started') req.onStart?.();
        else if (m.t === 'done') finish(() => resolve(m.output));
        else if (m.t === 'failed') finish(() => reject(deserializeError(m.error)));
        else if (m.t === 'log') req.logger[m.level](m.obj ?? {}, m.msg);
        else if (m.t === 'call') {
          // After an abort the attempt is over: nothing more is committed for it.
          const reply = aborted
            ? Promise.reject(new Error('the attempt was aborted'))
            : m.op === 'getStep'
              ? req.ops.getStep(m.key)
              : m.op === 'putStep'
                ? req.ops.putStep(m.key, m.result)
                : req.ops.heartbeat(m.progress);
          reply.then(
            (value) => slot.channel.send({ t: 'reply', id, seq: m.seq, ok: true, value: value ?? null }),
            (err: unknown) =>
              slot.channel.send({ t: 'reply', id, seq: m.seq, ok: false, error: serializeError(err) }),
          );
        }
      };
      if (req.signal.aborted) onAbort();
      else req.signal.addEventListener('abort', onAbort, { once: true });
      slot.ready.then(
        () =>
          slot.channel.send({
            t: 'run',
            id,
            module,
            task: req.task.name,
            input: req.input,
            meta: req.meta,
            mode: req.mode,
            steps: req.committedSteps,
          }),
        (err: unknown) => finish(() => reject(err)),
      );
    });
  }

  private async acquire(task: TaskDefinition): Promise<Slot> {
    const key = this.options.keyOf(task);
    for (;;) {
      if (this.closed) throw new Error(`the ${this.name} runtime is closed`);
      const idle = [...this.slots].find((s) => !s.busy && !s.dead && s.key === key);
      if (idle) {
        idle.busy = true;
        return idle;
      }
      if (this.slots.size >= this.options.size) {
        // Make room: retire an idle runner of another configuration, or wait for one to free up.
        const other = [...this.slots].find((s) => !s.busy);
        if (other) {
          other.dead = true;
          other.channel.kill();
          this.slots.delete(other);
        } else {
          await new Promise<void>((r) => this.waiting.push(r));
          continue;
        }
      }
      return this.start(task, key);
    }
  }

  private start(task: TaskDefinition, key: string): Slot {
    const channel = this.options.spawn(task);
    let markReady: () => void = () => undefined;
    let failReady: (e: unknown) => void = () => undefined;
    const slot: Slot = {
      key,
      channel,
      busy: true,
      dead: false,
      ready: new Promise<void>((resolve, reject) => {
        markReady = resolve;
        failReady = reject;
      }),
    };
    slot.ready.catch(() => undefined);
    channel.onMessage((m) => {
      if (m.t === 'ready') markReady();
      else slot.current?.(m);
    });
    channel.onExit((err) => {
      slot.dead = true;
      failReady(
        err ?? new RuntimeCrashedError('runtime_crashed', `the ${this.name} exited before it was ready`),
      );
      if (!slot.busy) this.slots.delete(slot);
      slot.exit?.(err);
    });
    this.slots.add(slot);
    return slot;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const s of this.slots) {
      s.dead = true;
      s.channel.kill();
    }
    this.slots.clear();
    for (const w of this.waiting.splice(0)) w();
  }
}
