import { COLUMNS, fit, wrap } from './text.js';

// The one progress display (the bench's runs, the demo's paths), on stderr so stdout keeps the
// results. On a terminal it redraws one line: runs done out of the plan, elapsed time, the current
// run and its own progress (sessions opened, ...). Otherwise it prints a line per finished run.
// Every line fits 80 columns: a long label is cut, a long outcome goes on lines of its own.

export class Progress {
  readonly #name: string;
  readonly #total: number;
  readonly #tty: boolean;
  readonly #out: NodeJS.WriteStream;
  readonly #t0 = Date.now();
  #done = 0;
  #label = '';
  #runStart = Date.now();
  #detail = '';
  #lastDraw = 0;

  /** `name` opens the closing summary line (`bench: 12 runs in 80 s`). */
  constructor(name: string, totalRuns: number, out: NodeJS.WriteStream = process.stderr) {
    this.#name = name;
    this.#total = Math.max(1, totalRuns);
    this.#out = out;
    this.#tty = Boolean(out.isTTY);
  }

  start(label: string): void {
    this.#label = label;
    this.#detail = '';
    this.#runStart = Date.now();
    this.#draw(true);
  }

  /** Progress inside the current run, with an optional phase (`open`, `echo`). */
  step(done: number, total: number, phase?: string): void {
    this.#detail = `${phase ? `${phase} ` : ''}${done}/${total}`;
    this.#draw(false);
  }

  finish(outcome: string): void {
    this.#done++;
    const secs = ((Date.now() - this.#runStart) / 1000).toFixed(1);
    if (this.#tty) {
      this.#detail = outcome;
      this.#draw(true);
      return;
    }
    const head = `[${this.#done}/${this.#total}] `;
    const tail = ` (${secs} s)`;
    const line = `${head}${this.#label}: ${outcome}${tail}`;
    if (line.length <= COLUMNS) this.#out.write(line + '\n');
    else this.#out.write([fit(`${head}${this.#label}`, COLUMNS - tail.length) + tail, ...wrap(outcome, 4)].join('\n') + '\n');
  }

  /** A line that stays (warnings, scenario headers), wrapped to 80 columns. */
  note(text: string): void {
    if (this.#tty) this.#out.write('\r\x1b[2K');
    const [first = '', ...rest] = wrap(text, 2);
    this.#out.write([first.trimStart(), ...rest].join('\n') + '\n');
    if (this.#tty) this.#draw(true);
  }

  /** Clear the bar and print the summary line. */
  end(): void {
    if (this.#tty) this.#out.write('\r\x1b[2K');
    const secs = ((Date.now() - this.#t0) / 1000).toFixed(0);
    this.#out.write(`${this.#name}: ${this.#done} run${this.#done === 1 ? '' : 's'} in ${secs} s\n`);
  }

  #draw(force: boolean): void {
    if (!this.#tty) return;
    const now = Date.now();
    if (!force && now - this.#lastDraw < 100) return;
    this.#lastDraw = now;
    const width = 20;
    const filled = Math.round((this.#done / this.#total) * width);
    const elapsed = ((now - this.#t0) / 1000).toFixed(0);
    const head = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${this.#done}/${this.#total} ${elapsed}s  `;
    // The run's own progress matters most: the label gives way first.
    const room = Math.min(this.#out.columns ?? COLUMNS, COLUMNS) - 1;
    const detail = fit(this.#detail, Math.max(0, room - head.length - 12));
    const label = fit(this.#label, Math.max(0, room - head.length - detail.length - 1));
    this.#out.write('\r\x1b[2K' + fit(`${head}${label} ${detail}`, room));
  }
}
