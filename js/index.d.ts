// Types for resnet-wgpu: ResNet inference on WGSL compute shaders in the browser.
// tests/e2e/api.test.mjs checks every object the API returns against these interfaces.

/**
 * Every error the package throws is an `Error`; those a program may want to tell
 * apart are named 'ResNetError' and carry one of these codes.
 */
export type ErrorCode =
  | 'BAD_WEIGHTS' // not ResNet weights in a format the engine reads
  | 'BAD_INPUT' // a malformed argument or input
  | 'INPUT_TOO_LARGE' // an input beyond the documented maximum or the adapter's limits
  | 'UNSUPPORTED' // no WebGPU, or an adapter without a needed feature or limit
  | 'DEVICE_LOST' // the GPU device was lost: load the model again
  | 'GPU_ERROR' // another GPU failure (validation, out of memory)
  | 'DOWNLOAD_FAILED' // the weights could not be downloaded
  | 'DISPOSED' // the model was disposed
  | 'NO_FRAME' // statistics asked for before any frame
  | 'BUSY' // the engine was called while busy (never through ResNet, which queues calls)
  | 'IO_ERROR'
  | 'ERROR';

export interface ResNetError extends Error {
  name: 'ResNetError';
  code: ErrorCode;
}

/** Makes an `Error` named 'ResNetError' with `code` (`options.cause`: the error behind it, as for `Error`). */
export declare function resnetError(code: ErrorCode, message: string, options?: { cause?: unknown }): ResNetError;

/** Deletes the Cache API cache of downloaded weights (default 'resnet-weights'); true if it existed. */
export declare function clearWeightsCache(name?: string): Promise<boolean>;

/** Bytes of WebAssembly memory the engine holds (it only grows: the high-water mark); 0 before loading. */
export declare function wasmMemoryBytes(): number;

/** Anything `classify` accepts. */
export type Frame = HTMLVideoElement | HTMLImageElement | HTMLCanvasElement | OffscreenCanvas | ImageBitmap | ImageData | VideoFrame;

/** `.safetensors` weights: a URL, bytes, or a file. */
export type WeightsSource = string | URL | ArrayBuffer | Uint8Array | Blob | Promise<ArrayBuffer | Uint8Array | Blob>;

export interface LoadOptions {
  /**
   * Download / read progress. Without a length from the server the first
   * call has `totalBytes` 0 and later ones the bytes so far. For a URL,
   * `source.fromCache` says whether the bytes come from the browser's cache.
   */
  onProgress?: (loadedBytes: number, totalBytes: number, source?: { fromCache: boolean }) => void;
  /** `fast` (default): batchnorm folded, ReLU and residual add fused. `inspect`: every intermediate kept. */
  mode?: 'fast' | 'inspect';
  /** Class names, one per class. */
  labels?: string[];
  /** Network input (centre crop) size: 224 (default) or [height, width], whole numbers from 32 to 4096. */
  inputSize?: number | [number, number];
  /**
   * Cache API cache for URL sources (default 'resnet-weights'); false disables caching. Only a
   * download that parsed as weights of its announced length is cached; a cached copy that no
   * longer parses is evicted and downloaded again.
   */
  cache?: string | false;
  /**
   * URL sources: a download that receives nothing for this many milliseconds is abandoned with
   * code 'DOWNLOAD_FAILED' (default 30000; Infinity: no limit), so a stalled connection cannot
   * hang load() forever.
   */
  stallTimeout?: number;
  /**
   * Compute each block's channel means and ‖F(x)‖/‖x‖ every frame (default true, a few
   * extra GPU dispatches). false runs the network alone; channelMeans() and residuals() come back empty.
   */
  stats?: boolean;
  /**
   * 'f32' (default) or 'f16': fast mode stores activations and conv weights as f16 (half the
   * memory traffic) and multiplies in f16 with f32 accumulation every 16 products (twice the
   * rate on most laptop and mobile GPUs); logits move by about 0.1–2% of their largest value.
   * Needs the adapter's 'shader-f16' feature, else load() rejects with code 'UNSUPPORTED'.
   */
  precision?: 'f32' | 'f16';
  /**
   * Where the network runs: 'auto' (default) uses WebGPU where an adapter meets the limits,
   * else the CPU (WebAssembly SIMD, one thread: slower, the same numbers); 'webgpu' rejects
   * with code 'UNSUPPORTED' without it; 'cpu' always runs on the CPU.
   */
  backend?: 'auto' | 'webgpu' | 'cpu';
}

export interface ModelInfo {
  description: string;
  classes: number;
  inputSize: [number, number];
  mode: 'fast' | 'inspect';
  precision: 'f32' | 'f16';
  /** Where the network runs. */
  backend: 'webgpu' | 'cpu';
  /** Why: 'WebGPU is available', or why not (no WebGPU, no adapter, a device that failed), or that it was asked for. */
  backendReason: string;
  /** The GPU adapter, or a description of the CPU backend. */
  adapter: string;
  timestampQuery: boolean;
}

export interface Prediction {
  index: number;
  label: string;
  probability: number;
}

export interface Classification {
  top: Prediction[];
  /** All logits, before softmax. */
  logits: Float32Array;
  /** Wall time of this call in milliseconds. */
  ms: number;
}

export interface BlockInfo {
  /** As in the weights: `stem`, `layer1.0` … or `res2a` …, and `pool` for the head. */
  name: string;
  stage: number;
  kind: 'stem' | 'convolutional' | 'identity' | 'plain' | 'head'; // 'plain': a block without shortcut (networks built by `experiment`)
  shape: [number, number, number];
}

export interface Activation {
  shape: [number, number, number];
  data: Float32Array;
}

export interface Residual {
  name: string;
  /** ‖F(x)‖: the main path's output, before the residual add; 0 when the block was skipped. */
  main: number;
  /** ‖x‖: the shortcut. */
  shortcut: number;
  /** ‖F(x)‖ / ‖x‖. */
  ratio: number;
  /** The block was switched off (setBlockEnabled) in that frame: its main path did not run. */
  skipped: boolean;
}

export interface Timings {
  /** 'gpu': GPU timestamps; 'cpu': the CPU backend's clock per stage; 'wall': the whole call only. */
  source: 'gpu' | 'cpu' | 'wall';
  stages: { name: string; ms: number }[];
  totalMs: number;
}

/** A rectangle in a frame's own pixels. */
export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface ClassActivationMap {
  width: number;
  height: number;
  data: Float32Array;
}

/**
 * Every method that returns a promise checks its arguments and reads its input (the frame's
 * pixels, the tensor) when it is called, then runs after the calls made before it: a canvas
 * drawn on again, a video playing on or an array refilled right after the call does not change
 * what it classifies. A bad argument rejects the promise (it never throws).
 */
export declare class ResNet {
  /** Made by `ResNet.load` only. */
  private constructor();
  static load(source: WeightsSource, options?: LoadOptions): Promise<ResNet>;
  readonly info: ModelInfo;
  /** The class names results are labelled with: those given to `load`, else those the weights file carries (trained weights), else null. */
  readonly labels: string[] | null;
  /** The part of a `width`×`height` frame the network sees (resize and centre crop). */
  crop(width: number, height: number): Rect;
  /** The frame as it is at the call (its pixels are read before this returns). */
  classify(frame: Frame, options?: { topk?: number }): Promise<Classification>;
  /** A raw 3×H×W NCHW tensor at the planned size, no preprocessing; copied at the call. */
  classifyTensor(data: Float32Array, options?: { topk?: number }): Promise<Classification>;
  blocks(): BlockInfo[];
  /** Output of a block for the last classified frame; `channels` (an array or typed array of indices) limits what is read back. */
  activation(name: string, options?: { channels?: ArrayLike<number> }): Promise<Activation>;
  channelMeans(name: string): Float32Array;
  residuals(): Residual[];
  /** Identity blocks only: disabled, the main path is skipped and the input passes through. */
  setBlockEnabled(name: string, enabled: boolean): void;
  blockEnabled(name: string): boolean;
  timings(): Timings;
  classActivationMap(index: number): Promise<ClassActivationMap>;
  setInputSize(inputSize: number | [number, number]): Promise<void>;
  /** A trainer for new classes on this model's weights (on WebGPU or the CPU backend); after its `fit`, this model classifies with the trained weights and class names. */
  trainer(options: TrainerOptions): Promise<Trainer>;
  /** The weights as `.safetensors` (the trained ones after a fit, class names in the metadata), as `ResNet.load` takes them. */
  exportWeights(): Promise<Uint8Array>;
  dispose(): void;
}

export interface TrainerOptions {
  /** The names of the classes to train (at least two). */
  classes: string[];
  /** The weights training starts from (`.safetensors` of the same network, say the ones the model was loaded with): by default the model's own, trained ones after a fit. */
  weights?: Uint8Array;
  /** Where the training passes run: 'auto' (default: WebGPU where this model runs on a hardware GPU; a software adapter such as SwiftShader trains slower than the CPU backend), 'webgpu' or 'cpu'. */
  backend?: 'auto' | 'webgpu' | 'cpu';
  /** What trains: the dense layer (default), the last stage and the dense layer, or everything. */
  train?: 'head' | 'last-stage' | 'all';
  /** Batchnorm on its running statistics (default), or on each batch's. */
  bn?: 'frozen' | 'batch';
  optimizer?: 'adamw' | 'sgd';
  /** Default 0.001 (AdamW) or 0.01 (SGD). */
  learningRate?: number;
  /** SGD's momentum, default 0.9. */
  momentum?: number;
  /** Default 0.01 (AdamW, decoupled) or 0 (SGD). */
  weightDecay?: number;
  schedule?: 'constant' | 'cosine';
  /** Random resized crops, flips and brightness/contrast jitter, seeded (default false). Frames are then kept whole and the frozen part runs every step. */
  augment?: boolean;
  seed?: number;
  /** The most memory examples and training tensors may take, in MB (default 1024): past it, INPUT_TOO_LARGE. */
  memoryLimitMB?: number;
}

export interface FitOptions {
  epochs?: number;
  batchSize?: number;
  /** The share of the examples held out to measure validation accuracy (default 0). */
  validationSplit?: number;
  /** Aborting rejects `fit` with an `AbortError` after the step in progress; the model keeps its weights. */
  signal?: AbortSignal;
  onStep?: (step: { step: number; steps: number; loss: number }) => void;
  onEpoch?: (epoch: EpochResult) => void;
}

export interface EpochResult {
  /** 1-based. */
  epoch: number;
  /** Mean cross-entropy over the epoch's steps. */
  loss: number;
  /** The share of training examples the epoch's forward passes got right. */
  accuracy: number;
  /** On the held-out examples after the epoch, as in inference; null without validationSplit. */
  valAccuracy: number | null;
}

export interface GradientNorm {
  /** The block, as in `blocks()`. */
  name: string;
  /** ‖∂L/∂W‖ of the block's tensors in the last step; null where the block does not train. */
  weights: number | null;
  /** ‖∂L/∂x‖ at the block's input in the last step; null where the gradient does not reach it. */
  input: number | null;
}

/** Made by `ResNet.trainer`. Calls run one at a time, in order, each reading its input when made. */
export declare class Trainer {
  private constructor();
  readonly classes: string[];
  /** Where the training passes run. */
  readonly backend: 'webgpu' | 'cpu';
  /** Adds a frame (its pixels read at the call) as an example of class `classIndex`; resolves with the number of examples. */
  add(frame: Frame, classIndex: number): Promise<number>;
  addTensor(data: Float32Array, classIndex: number): Promise<number>;
  remove(index: number): Promise<void>;
  count(): number;
  fit(options?: FitOptions): Promise<EpochResult[]>;
  gradientNorms(): GradientNorm[];
  /** The held-out examples after the last epoch (empty without `validationSplit`): what a confusion matrix is made of. */
  validation(): ValidationResult[];
  dispose(): void;
}

export interface ValidationResult {
  /** The example's index in the order added (removed ones not counted). */
  example: number;
  /** Its class. */
  label: number;
  /** The class predicted after the last epoch. */
  predicted: number;
}

/** Seeded, untrained demo weights (ResNet-18 layout at quarter width, 1000 classes). */
export declare function demoWeights(): Promise<Uint8Array>;

/** Indices of the `k` largest values, largest first (ties: lower index first; NaN ranks last); `k` is floored and clamped to 0…length. */
export declare function topIndices(values: ArrayLike<number>, k: number): number[];

/** Whether this browser can run the engine, and if not, why. */
export declare function webgpuSupport(): Promise<{ ok: boolean; message: string; f16?: boolean }>;

/** The 1000 ImageNet class names, in class-index order (shipped with the package). */
export declare function imagenetClasses(): Promise<string[]>;

/** Options of `experiment` (every one optional). */
export interface ExperimentOptions {
  /** 6n+2: 8, 14, 20, 32, 44, 56, … (default 20). */
  depth?: number;
  /** Default true; false keeps each conv's trained per-channel scale and shift, without normalisation. */
  batchnorm?: boolean;
  /** 'he' (default) or 'glorot' (Keras' glorot_uniform, the lesson's). */
  init?: 'he' | 'glorot';
  /** Each residual block's last batchnorm starts at γ = 0 (the block starts as the identity). */
  zeroGamma?: boolean;
  /** The three stages' widths (default [16, 32, 64]). */
  widths?: number[];
  /** SGD (momentum 0.9) learning rate, default 0.05. */
  lr?: number;
  weightDecay?: number;
  batchSize?: number;
  epochs?: number;
  /** Test accuracy every this many steps (default 10) and at the end. */
  evalEvery?: number;
  /** Seeds both networks' weights (alike) and the shuffle. */
  seed?: number;
  /** Train on the first N training examples only. */
  trainExamples?: number;
  backend?: 'auto' | 'webgpu' | 'cpu';
  /** A dataset file's bytes (format in tools/make_digits.py); the bundled digits by default. */
  dataset?: Uint8Array;
}

/** A measurement, or null where there is none. */
export type MaybeNumber = number | null;

/** One network's step in the experiment. */
export interface ExperimentRecord {
  /** 1-based. */
  step: number;
  /** null where it overflowed (the network diverged). */
  loss: number | null;
  /** ‖∂L/∂x‖ at each block's input (the blocks of `Experiment.blocks`). */
  gradNorms: MaybeNumber[];
  /** ‖F(x)‖/‖x‖ of each residual block; null for a plain network's. */
  ratios: MaybeNumber[];
  /** The test split's accuracy after this step, where measured. */
  testAccuracy: number | null;
  /** The mean training loss of the epoch this step ended. */
  epochLoss: number | null;
}

export interface ExperimentHistory {
  residual: ExperimentRecord[];
  plain: ExperimentRecord[];
}

export interface ExperimentRunOptions {
  /** Aborting it stops the run with an AbortError (what was done is kept). */
  signal?: AbortSignal;
  /** After each step: [residual, plain]. */
  onStep?: (records: [ExperimentRecord, ExperimentRecord]) => void;
}

/** Made by `experiment`: a ResNet and its plain twin trained side by side. */
export declare class Experiment {
  private constructor();
  /** The residual and plain blocks, in order (the heatmaps' rows). */
  readonly blocks: string[];
  /** Steps of the whole run (each network). */
  readonly steps: number;
  readonly backend: 'webgpu' | 'cpu';
  readonly history: ExperimentHistory;
  /** One step of both networks: [residual, plain], or null once the run is over. */
  step(): Promise<[ExperimentRecord, ExperimentRecord] | null>;
  /** The remaining steps, yielding between them; an aborted `signal` stops it with an AbortError. */
  run(options?: ExperimentRunOptions): Promise<ExperimentHistory>;
  /** A network's weights as `.safetensors` (its description in the metadata: `ResNet.load` takes them back). */
  exportWeights(which: 'residual' | 'plain'): Uint8Array;
  dispose(): void;
}

/** The residual experiment: a CIFAR-style ResNet and its plain twin trained side by side on the bundled handwritten digits. */
export declare function experiment(options?: ExperimentOptions): Promise<Experiment>;

/** The bundled dataset: UCI handwritten digits (8×8, 1297 to train, 500 to test; CC BY 4.0). */
export declare function digitsDataset(): Promise<Uint8Array>;
