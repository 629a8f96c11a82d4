// One call at a time, in order: how the package's objects (a model, a
// trainer, an experiment) serialise their calls into the wasm engine.

/**
 * Calls that run one at a time, in the order made: `call(prepare, live)`
 * runs `prepare` now (it checks the arguments and captures the input as it
 * is at the call; what it throws comes back as a rejection), then the
 * function it returns, on `live()`, once every earlier call has finished.
 */
export class CallQueue {
  #tail = Promise.resolve();

  call(prepare, live) {
    let fn;
    try {
      fn = prepare();
    } catch (e) {
      return Promise.reject(e);
    }
    const run = this.#tail.then(() => fn(live()));
    this.#tail = run.catch(() => {});
    return run;
  }

  /** Runs `f` once the calls made so far have finished. */
  after(f) {
    this.#tail.then(f);
  }
}
