/**
 * Offline verification of an exported bundle: no database, only the bundle and the public key.
 * Never throws for bad input: whatever is wrong becomes `ok: false` with the first bad seq (or
 * null when it is not an entry that is wrong: the header, the key) and why.
 */

import { createHash, type KeyObject } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { type BundleHeader, parseHeader, recordFromLine } from './codec.js';
import { type BundleManifest, MANIFEST_END, parseManifest, verifyManifest } from './manifest.js';
import {
  emptyReport,
  keyMap,
  Verifier,
  type VerifierOptions,
  type VerifyRecord,
  type VerifyReport,
} from './verify.js';

export interface BundleReport extends VerifyReport {
  header: BundleHeader | null;
}

function rejected(reason: string, header: BundleHeader | null = null): BundleReport {
  return { ...emptyReport(), ok: false, firstBad: { seq: null, reason }, header };
}

export async function verifyBundle(
  lines: AsyncIterable<string> | Iterable<string>,
  keys: KeyObject[],
  options: { pinned?: VerifierOptions['pinned']; onLine?: (n: number) => void } = {},
): Promise<BundleReport> {
  try {
    let header: BundleHeader | null = null;
    let verifier: Verifier | null = null;
    let lineNo = 0;
    let lastSeq = 0;
    let manifest: BundleManifest | null = null;
    let trusted = new Map<string, KeyObject>();
    const digest = createHash('sha256');
    for await (const line of lines) {
      lineNo++;
      if (line === '' && !header) return rejected(`line ${lineNo} is blank: a bundle has no blank lines`);
      if (manifest)
        return rejected(`line ${lineNo} follows the manifest, which must be the last line`, header);
      if (header && line.endsWith(MANIFEST_END)) {
        manifest = parseManifest(line);
        if (!manifest) return rejected(`line ${lineNo} is not a well-formed manifest`, header);
        continue;
      }
      digest.update(`${line}\n`);
      if (!header) {
        try {
          header = parseHeader(line);
        } catch (err) {
          return rejected((err as Error).message);
        }
        trusted = keyMap(keys);
        if (!header.keyIds.some((k) => trusted.has(k)))
          return rejected(
            `the bundle is signed with ${header.keyIds.join(', ') || 'no key'}, not with the key given (${[...trusted.keys()].join(', ')})`,
            header,
          );
        verifier = new Verifier({
          mode: 'bundle',
          keys: trusted,
          fromSeq: header.fromSeq,
          ...(options.pinned && { pinned: options.pinned }),
        });
        continue;
      }
      const record: VerifyRecord =
        line === ''
          ? { type: 'malformed', seq: null, reason: `line ${lineNo} is blank: a bundle has no blank lines` }
          : recordFromLine(line, lineNo);
      if (record.type === 'entry') lastSeq = record.entry.seq;
      else if (record.type === 'stub') lastSeq = record.seq;
      if (!verifier?.push(record)) break;
      if (lineNo % 10_000 === 0) options.onLine?.(lineNo);
    }
    if (!header || !verifier)
      return rejected(lineNo === 0 ? 'the bundle is empty' : 'the bundle has no header line');
    const report = verifier.finish();
    const fail = (seq: number | null, reason: string) => {
      report.ok = false;
      report.firstBad = { seq, reason };
    };
    if (report.ok && lastSeq !== header.toSeq)
      fail(lastSeq + 1, `the header says the bundle ends at seq ${header.toSeq} but it ends at ${lastSeq}`);
    if (report.ok && !manifest)
      fail(lastSeq + 1, 'the bundle has no manifest line: it was cut short (or is not a Bulkhead export)');
    if (report.ok && manifest) {
      const key = trusted.get(manifest.keyId);
      const sha256 = digest.digest('hex');
      if (!key) fail(null, `the manifest is signed by ${manifest.keyId}, which is not the key given`);
      else if (!verifyManifest(manifest, key)) fail(null, 'the manifest signature does not verify');
      else if (manifest.sha256 !== sha256)
        fail(
          null,
          "the bundle's lines are not the lines its manifest signed (the header, or which entries are disclosed, was changed)",
        );
    }
    return { ...report, header };
  } catch (err) {
    return rejected(`the bundle could not be read: ${(err as Error).message}`);
  }
}

/** What a line that is not valid UTF-8 reads as: never valid JSON, so the verifier names its seq. */
const NOT_UTF8 = '\u0000(this line is not valid UTF-8)';

/**
 * A bundle file's lines, streamed, split on LF only: a CR is part of its line (and so makes it
 * non-canonical), never a separator. A final LF ends the last line; it does not start an empty one.
 * Each line is decoded on its own, strictly (a byte-order mark is kept, and so refused).
 */
export async function* bundleLines(path: string): AsyncGenerator<string> {
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const decode = (bytes: Buffer) => {
    try {
      return decoder.decode(bytes);
    } catch {
      return NOT_UTF8;
    }
  };
  let rest: Buffer = Buffer.alloc(0);
  for await (const chunk of createReadStream(path)) {
    rest = rest.length === 0 ? (chunk as Buffer) : Buffer.concat([rest, chunk as Buffer]);
    let start = 0;
    let nl = rest.indexOf(0x0a, start);
    while (nl !== -1) {
      yield decode(rest.subarray(start, nl));
      start = nl + 1;
      nl = rest.indexOf(0x0a, start);
    }
    rest = rest.subarray(start);
  }
  if (rest.length > 0) yield decode(rest);
}

/** The lines of a bundle held in memory, split as `bundleLines` does. */
export function bundleTextLines(text: string): string[] {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}
