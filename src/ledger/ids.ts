/**
 * Job ids are UUIDv7 (RFC 9562): 48 bits of milliseconds, then randomness. They sort by creation
 * time as plain strings, which is what list pagination orders by. Within one process they are also
 * strictly increasing: a clock that stands still or steps back reuses the last time and counts up.
 */
import { randomBytes } from 'node:crypto';

let lastMs = 0;
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
  const bytes = randomBytes(16);
  bytes.writeUIntBE(ms, 0, 6);
  // version 7 in the high nibble, then 12 bits of sequence (rand_a) to keep order within a millisecond
  bytes[6] = 0x70 | ((counter >> 8) & 0x0f);
  bytes[7] = counter & 0xff;
  bytes[8] = 0x80 | ((bytes[8] ?? 0) & 0x3f);
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
