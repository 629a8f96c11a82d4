// The residual experiment in the package: a CIFAR-style ResNet and its
// plain twin (same layers, no shortcuts), built from one description with
// the same seed, trained side by side on the bundled handwritten digits (or
// another dataset file) on WebGPU's kernels or the CPU backend in wasm.
// Made by `experiment()` in index.js; one step of both networks per wasm call,
// the page yielding between them.

import { CallQueue } from './calls.js';
import { abortError, expect, isU32, resnetError, show } from './errors.js';

/** The bundled dataset: UCI handwritten digits, 8×8, CC BY 4.0 (data/digits.LICENSE). */
export async function digitsDataset() {
  const r = await fetch(new URL('../data/digits.bin', import.meta.url));
  if (!r.ok) throw resnetError('DOWNLOAD_FAILED', `could not load the digits dataset: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

const OPTIONS = ['depth', 'batchnorm', 'init', 'zeroGamma', 'widths', 'lr', 'weightDecay', 'batchSize', 'epochs', 'evalEvery', 'seed', 'trainExamples', 'backend', 'dataset'];

/** Checks the options and turns them into the engine's JSON configuration. */
export function experimentConfig(options) {
  const o = options ?? {};
  expect(typeof o === 'object', 'experiment options must be an object');
  for (const k of Object.keys(o)) expect(OPTIONS.includes(k), `unknown experiment option '${k}': use ${OPTIONS.join(', ')}`);
  const { depth = 20, batchnorm = true, init = 'he', zeroGamma = false, widths = [16, 32, 64], lr = 0.05, weightDecay = 1e-4, batchSize = 64, epochs = 3, evalEvery = 10, seed = 1, trainExamples } = o;
  expect(Number.isInteger(depth), `depth must be a whole number (6n+2: 8, 20, 32, 56, …), got ${show(depth)}`);
  expect(typeof batchnorm === 'boolean' && typeof zeroGamma === 'boolean', 'batchnorm and zeroGamma are true or false');
  expect(init === 'he' || init === 'glorot', `init must be 'he' or 'glorot', got ${show(init)}`);
  expect(Array.isArray(widths) && widths.length === 3 && widths.every(Number.isInteger), `widths must be three whole numbers, got ${show(widths)}`);
  expect(typeof lr === 'number' && typeof weightDecay === 'number', 'lr and weightDecay are numbers');
  for (const [k, v] of [['batchSize', batchSize], ['epochs', epochs], ['evalEvery', evalEvery], ['seed', seed]]) expect(isU32(v), `${k} must be a whole number, got ${show(v)}`);
  expect(trainExamples === undefined || isU32(trainExamples), `trainExamples must be a whole number, got ${show(trainExamples)}`);
  return JSON.stringify({
    network: { depth, residual: true, batchnorm, init, zeroGamma, widths, seed },
    lr, weightDecay, batch: batchSize, epochs, evalEvery, seed, trainExamples: trainExamples ?? null,
  });
}

const aborted = () => abortError('the experiment was stopped');

/**
 * Two networks trained side by side. `blocks` names the heatmaps' rows;
 * each step gives one record per network: `{ step, loss, gradNorms,
 * ratios, testAccuracy, epochLoss }` (gradNorms: ‖∂L/∂x‖ at each block's
 * input; ratios: ‖F(x)‖/‖x‖ of each residual block, null for plain ones;
 * testAccuracy every `evalEvery` steps and at the end, else null).
 */
export class Experiment {
  #wasm;
  #queue = new CallQueue();
  /** The residual and plain blocks, in order. */
  blocks;
  /** Steps of the whole run (each network). */
  steps;
  /** Every step so far: `{ residual: [...records], plain: [...records] }`. */
  history = { residual: [], plain: [] };

  constructor(wasm) {
    this.#wasm = wasm;
    this.blocks = JSON.parse(wasm.blocks());
    this.steps = wasm.steps();
  }

  #live() {
    if (!this.#wasm) throw resnetError('DISPOSED', 'this experiment has been disposed');
    return this.#wasm;
  }

  /** Where the passes run: 'webgpu' or 'cpu'. */
  get backend() {
    return this.#live().backend();
  }

  /** One step of both networks: `[residual, plain]` records, or null once the run is over. Steps run one at a time, in order. */
  step() {
    return this.#queue.call(
      () => async (m) => {
        const s = await m.step();
        if (s === null) return null;
        const [r, p] = JSON.parse(s);
        this.history.residual.push(r);
        this.history.plain.push(p);
        return [r, p];
      },
      () => this.#live(),
    );
  }

  /**
   * Runs the remaining steps: `{ signal, onStep([residual, plain]) }`,
   * yielding to the page between steps. Resolves with `history`; a
   * `signal` that aborts stops it (an `AbortError`), keeping what was done.
   */
  async run(options) {
    const { signal, onStep } = options ?? {};
    expect(signal === undefined || (typeof signal === 'object' && signal !== null && 'aborted' in signal), 'signal must be an AbortSignal');
    expect(onStep === undefined || typeof onStep === 'function', 'onStep must be a function');
    for (;;) {
      if (signal?.aborted) throw aborted();
      const r = await this.step();
      if (r === null) return this.history;
      onStep?.(r);
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  }

  /** A network's weights now as `.safetensors` (`'residual'` or `'plain'`; the description in the metadata). */
  exportWeights(which) {
    expect(which === 'residual' || which === 'plain', `exportWeights takes 'residual' or 'plain', got ${show(which)}`);
    return this.#live().export_weights(which === 'residual' ? 0 : 1);
  }

  /** Frees both networks (after the steps already asked for). */
  dispose() {
    const m = this.#wasm;
    this.#wasm = null;
    this.#queue.after(() => m?.free());
  }
}
