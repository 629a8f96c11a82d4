// The page's shared state, in one place. Everything else lives in the module
// that owns it (the panels in panels.js, the webcam stream in inputs.js, …).

/**
 * What the tests (and a curious console) see as `window.__resnet`: keep
 * exactly these fields.
 */
export const state = {
  /** The current `ResNet`, or null (none loaded yet, or reloading after a device loss). */
  model: null,
  /** The last `classify` result: `{ top, logits, ms }`. */
  lastResult: null,
  /** Frames classified so far. */
  frames: 0,
  /** What is classified: `{ kind: 'camera' }` | `{ kind: 'image', el, name }` | null. */
  source: null,
  /** Full refreshes (classify + every panel) done; the tests wait on it. */
  settled: 0,
  /** Models loaded, reloads after a device loss included. */
  loads: 0,
  /** Every message shown in the error area, oldest first. */
  errors: [],
};
window.__resnet = state;

/** The few other values that more than one module reads. */
export const page = {
  /** The package (../js/index.js), once main() has imported it. */
  lib: null,
  /** The ImageNet class names from the package, or null when they did not load. */
  labels: null,
  /** A model is being loaded (the controls are disabled meanwhile). */
  loading: false,
  /** The GPU device was lost and no frame has been classified since. */
  lostSinceFrame: false,
  /** Why WebGPU is not available here (the CPU backend runs instead), or null. */
  noWebgpu: null,
  /** Whether the GPU adapter has shader-f16 (the f16 path). */
  f16: false,
};

/** A class's name: the model's own (a trained file's), its ImageNet label when the model has that many classes, else `class N`. */
export function labelOf(index) {
  const own = state.model?.labels;
  if (own) return own[index];
  const classes = state.model?.info.classes;
  if (page.labels && classes === page.labels.length) return page.labels[index];
  return `class ${index}`;
}
