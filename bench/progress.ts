// A progress bar on stderr: runs done out of the plan, the current run, and its own progress
// (sessions opened, ...). On a terminal it redraws one line; otherwise it prints a line per run.

export class Progress {
  readonly #total: number;
  readonly #tty: boolean;
  readonly #out: NodeJS.WriteStream;
  readonly #t0 = Date.now();
  #done = 0;
  #label = '';
  #runStart = Date.now();
  #detail = '';
  #lastDraw = 0;

  constructor(totalRuns: number, out: NodeJS.WriteStream = process.stderr) {
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

  /** Progress inside the current run. */
  step(done: number, total: number): void {
    this.#detail = `${done}/${total}`;
    this.#draw(false);
  }

  finish(outcome: string): void {
    this.#done++;
    const secs = ((Date.now() - this.#runStart) / 1000).toFixed(1);
    if (!this.#tty) {
      this.#out.write(`[${this.#done}/${this.#total}] ${this.#label}: ${outcome} (${secs} s)\n`);
    } else {
      this.#detail = outcome;
      this.#draw(true);
    }
  }

  /** A line that stays (warnings, scenario headers). */
  note(text: string): void {
    if (this.#tty) this.#out.write('\r\x1b[2K');
    this.#out.write(text + '\n');
    if (this.#tty) this.#draw(true);
  }

  end(): void {
    if (this.#tty) this.#out.write('\r\x1b[2K');
    const secs = ((Date.now() - this.#t0) / 1000).toFixed(0);
    this.#out.write(`bench: ${this.#done} runs in ${secs} s\n`);
  }

  #draw(force: boolean): void {
    if (!this.#tty) return;
    const now = Date.now();
    if (!force && now - this.#lastDraw < 100) return;
    this.#lastDraw = now;
    const width = 24;
    const filled = Math.round((this.#done / this.#total) * width);
    const elapsed = ((now - this.#t0) / 1000).toFixed(0).padStart(4);
    const line = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${this.#done}/${this.#total} ${elapsed}s  ${this.#label} ${this.#detail}`;
    const cols = this.#out.columns ?? 120;
    this.#out.write('\r\x1b[2K' + line.slice(0, cols - 1));
  }
}
