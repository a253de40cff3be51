/**
 * The demo task pack `npm start` runs: a media-like pipeline and a flaky upstream call.
 *
 * - `demo.thumbnail` renders a synthetic image and downsamples it (CPU-heavy, two durable steps).
 * - `demo.summarize` picks the most representative sentences of a text.
 * - `demo.flaky` calls an "upstream" that fails its first attempts; the committed step before the
 *   call is not re-run on the retries; when it fails for good, its compensation undoes that step.
 * - `demo.echo` returns its input.
 *
 * In your own project, import from 'bulkhead' instead of the relative path.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { defineTask, NonRetryableError } from '../../src/index.js';

export const thumbnail = defineTask({
  name: 'demo.thumbnail',
  input: z.object({
    width: z.number().int().min(16).max(4096).default(1024),
    height: z.number().int().min(16).max(4096).default(768),
    scale: z.number().int().min(2).max(16).default(4),
    seed: z.number().int().default(1),
  }),
  timeoutMs: 30_000,
  async run(input, ctx) {
    // Step 1: "decode" the source (a deterministic RGB image from the seed). Committed once.
    const source = await ctx.step('render', () => {
      const pixels = render(input.width, input.height, input.seed);
      return { digest: sha256(pixels), bytes: pixels.length };
    });
    await ctx.heartbeat({ stage: 'resize' });
    // Step 2: box-filter downsample; re-rendered here because steps store results, not bytes.
    const pixels = render(input.width, input.height, input.seed);
    const w = Math.floor(input.width / input.scale);
    const h = Math.floor(input.height / input.scale);
    const thumb = downsample(pixels, input.width, input.height, input.scale);
    return { source, thumbnail: { width: w, height: h, digest: sha256(thumb), bytes: thumb.length } };
  },
});

export const summarize = defineTask({
  name: 'demo.summarize',
  input: z.object({
    text: z.string().min(1).max(100_000),
    sentences: z.number().int().min(1).max(20).default(2),
  }),
  run(input) {
    const sentences =
      input.text
        .match(/[^.!?]+[.!?]*/g)
        ?.map((s) => s.trim())
        .filter(Boolean) ?? [];
    const words = (s: string) => s.toLowerCase().match(/[a-z\u00c0-\u024f']+/g) ?? [];
    const freq = new Map<string, number>();
    for (const w of words(input.text)) if (w.length > 3) freq.set(w, (freq.get(w) ?? 0) + 1);
    const score = (s: string) =>
      words(s).reduce((sum, w) => sum + (freq.get(w) ?? 0), 0) / (words(s).length || 1);
    const best = sentences
      .map((s, i) => ({ s, i, score: score(s) }))
      .sort((a, b) => b.score - a.score)
      .slice(0, input.sentences)
      .sort((a, b) => a.i - b.i)
      .map((x) => x.s);
    return { summary: best.join(' '), sentences: sentences.length, words: words(input.text).length };
  },
});

export const flaky = defineTask({
  name: 'demo.flaky',
  input: z.object({
    failures: z.number().int().min(0).max(10).default(2),
    permanent: z.boolean().default(false),
  }),
  maxAttempts: 5,
  backoff: { baseMs: 200, maxMs: 2000 },
  async run(input, ctx) {
    const prepared = await ctx.step('prepare', () => ({ preparedOnAttempt: ctx.attempt }));
    if (input.permanent)
      throw new NonRetryableError('the upstream rejected the request for good', 'upstream_rejected');
    if (ctx.attempt <= input.failures) {
      const err = new Error(`upstream answered 503 on attempt ${ctx.attempt}`) as Error & { code: string };
      err.code = 'upstream_unavailable';
      throw err;
    }
    return {
      ...prepared,
      succeededOnAttempt: ctx.attempt,
      idempotencyKey: ctx.idempotencyKey('upstream-call'),
    };
  },
  // When the job ends dead (or cancelled, expired) after `prepare` committed, this runs as its own
  // job (kind `compensation`, parentId = the failed job) with the committed step results.
  compensate(_input, ctx, committedSteps) {
    ctx.logger.info({ undo: Object.keys(committedSteps) }, 'undoing committed steps');
    return { undone: Object.keys(committedSteps) };
  },
});

/**
 * An agent's tool call that moves money: a model proposes it, people approve it (the published
 * config makes it need approval), and only then does it run, once, with an idempotency key the
 * payment provider deduplicates on.
 */
export const payout = defineTask({
  name: 'demo.payout',
  input: z.object({
    to: z.string().min(1).max(200),
    amountCents: z.number().int().positive().max(1_000_000),
  }),
  effect: 'destructive',
  async run(input, ctx) {
    const receipt = await ctx.step('pay', () => ({
      paid: input.amountCents,
      to: input.to,
      providerKey: ctx.idempotencyKey('pay'),
    }));
    return receipt;
  },
});

export const echo = defineTask({
  name: 'demo.echo',
  input: z.unknown(),
  run: (input) => input,
});

function render(width: number, height: number, seed: number): Uint8Array {
  const out = new Uint8Array(width * height * 3);
  let i = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const v = Math.sin((x * seed) / 37) * Math.cos((y + seed) / 23);
      out[i++] = (128 + 127 * v) & 255;
      out[i++] = (x * 255) / width;
      out[i++] = (y * 255) / height;
    }
  }
  return out;
}

function downsample(src: Uint8Array, width: number, height: number, scale: number): Uint8Array {
  const w = Math.floor(width / scale);
  const h = Math.floor(height / scale);
  const out = new Uint8Array(w * h * 3);
  for (let ty = 0; ty < h; ty++) {
    for (let tx = 0; tx < w; tx++) {
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        for (let dy = 0; dy < scale; dy++) {
          for (let dx = 0; dx < scale; dx++)
            sum += src[((ty * scale + dy) * width + tx * scale + dx) * 3 + c] ?? 0;
        }
        out[(ty * w + tx) * 3 + c] = Math.round(sum / (scale * scale));
      }
    }
  }
  return out;
}

const sha256 = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
