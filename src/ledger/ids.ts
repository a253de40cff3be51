/**
 * Job ids are UUIDv7 (RFC 9562): 48 bits of milliseconds, then randomness. They sort by creation
 * time as plain strings, which is what list pagination orders by. Within one process they are also
 * strictly increasing: a clock that stands still or steps back reuses the last time and counts up.
 */
import { randomFillSync } from 'node:crypto';

let lastMs = 0;
// Random bytes come from a pool refilled 4 KiB at a time: one syscall per 256 ids, not one per id.
const pool = Buffer.alloc(4096);
let poolOffset = pool.length;
let counter = 0;

export function newJobId(now: number = Date.now()): string {
  let ms = now;
  if (ms <= lastMs) {
    ms = lastMs;
    counter++;
    if (counter > 0xfff) {
      ms = lastMs + 1;
      counter = 0;
    }
  } else {
    counter = 0;
  }
  lastMs = ms;
  if (poolOffset + 16 > pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const bytes = Buffer.from(pool.subarray(poolOffset, poolOffset + 16));
  poolOffset += 16;
  bytes.writeUIntBE(ms, 0, 6);
  // version 7 in the high nibble, then 12 bits of sequence (rand_a) to keep order within a millisecond
  bytes[6] = 0x70 | ((counter >> 8) & 0x0f);
  bytes[7] = counter & 0xff;
  bytes[8] = 0x80 | ((bytes[8] ?? 0) & 0x3f);
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
