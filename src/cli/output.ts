/** CLI output: `--json` for scripts, aligned tables for people, and a progress bar on stderr. */

export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  auth: 3,
  notFound: 4,
  conflict: 5,
  jobUnsuccessful: 6,
  unreachable: 7,
  /** `evidence verify`: the log or bundle failed verification. */
  verifyFailed: 8,
} as const;

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Print rows as a table with a header; cells are stringified and padded. */
export function printTable(columns: string[], rows: unknown[][]): void {
  const cells = rows.map((r) => r.map((c) => (c === undefined || c === null ? '' : String(c))));
  const widths = columns.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  process.stdout.write(`${line(columns.map((c) => c.toUpperCase()))}\n`);
  for (const r of cells) process.stdout.write(`${line(r)}\n`);
}

/** A one-line progress bar on stderr; silent when stderr is not a terminal. */
export class Progress {
  private readonly tty = process.stderr.isTTY === true;
  private last = 0;
  constructor(
    private readonly total: number,
    private readonly label: string,
  ) {}

  update(done: number, detail = ''): void {
    if (!this.tty) return;
    const now = Date.now();
    if (now - this.last < 100 && done < this.total) return;
    this.last = now;
    const width = 30;
    const filled = Math.round((done / Math.max(1, this.total)) * width);
    process.stderr.write(
      `\r${this.label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done}/${this.total} ${detail}`.padEnd(
        80,
      ),
    );
  }

  done(): void {
    if (this.tty) process.stderr.write('\n');
  }
}
