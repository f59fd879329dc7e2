/** Steps that undo a start-up, run last-added first, each once (a failed start runs them too). */
export class Teardown {
  readonly #steps: Array<() => Promise<unknown> | unknown> = [];
  #running = false;

  add(step: () => Promise<unknown> | unknown): void {
    this.#steps.push(step);
  }

  /** A step to run after every other one (what must go last, e.g. the front the others' goodbyes pass through). */
  addFirst(step: () => Promise<unknown> | unknown): void {
    this.#steps.unshift(step);
  }

  /** True from the moment run() starts: what it will stop later must not be restarted meanwhile. */
  get running(): boolean {
    return this.#running;
  }

  async run(): Promise<void> {
    this.#running = true;
    for (let step = this.#steps.pop(); step; step = this.#steps.pop()) await step();
  }
}
