// The model: the picker (demo weights, ImageNet from the Hugging Face hub, a
// local file), loading and swapping models, the mode and input size, and
// reloading after the GPU device is lost.

import { page, state } from './state.js';
import { clearError, endProgress, hideSpinner, messageOf, setStatus, showError, showProgress, startProgress } from './status.js';
import { kick, pauseLoop } from './loop.js';
import { buildPanels } from './panels.js';
import { resetOverlay, resizeView } from './view.js';
import { clearResiduals } from './results.js';

const HUB = (name) => `https://huggingface.co/timm/${name}.tv_in1k/resolve/main/model.safetensors`;
export const MODELS = {
  resnet18: { label: 'ResNet-18', url: HUB('resnet18'), mb: 47 },
  resnet34: { label: 'ResNet-34', url: HUB('resnet34'), mb: 87 },
  resnet50: { label: 'ResNet-50', url: HUB('resnet50'), mb: 102 },
  resnet101: { label: 'ResNet-101', url: HUB('resnet101'), mb: 178 },
  resnet152: { label: 'ResNet-152', url: HUB('resnet152'), mb: 241 },
};

const $ = (sel) => document.querySelector(sel);
const el = {
  modelSelect: $('#model-select'),
  weightsFile: $('#weights-file'),
  weightsField: $('#weights-file-field'),
  modelHint: $('#model-hint'),
  loadModel: $('#load-model'),
  modeSelect: $('#mode-select'),
  precisionSelect: $('#precision-select'),
  sizeSelect: $('#size-select'),
  backendSelect: $('#backend-select'),
  modelInfo: $('#model-info'),
  backendInfo: $('#backend-info'),
  untrained: $('#untrained-note'),
};

let loadedSpec = null; // what the current model was loaded from, for reloads
let loadedBackend = 'auto'; // the backend picker's value when it was loaded
let loadingSpec = null; // what the running load loads
let loadingText = ''; // its status line
let pending = null; // `{ spec, options, recovering }` asked for while a load ran: it runs next
let fallback = null; // a device-loss reload a user's load displaced: run if no model is left at the end
let focusBack = null; // the control that had the focus when loading disabled it

function currentOptions() {
  syncPrecision();
  return { mode: el.modeSelect.value, inputSize: Number(el.sizeSelect.value), backend: el.backendSelect.value, precision: el.precisionSelect.value };
}

/**
 * f16 is a fast-mode path on a GPU with shader-f16: elsewhere the picker
 * shows f32, and says why it cannot be changed.
 */
export function syncPrecision() {
  const why = !page.f16 ? 'needs a GPU with shader-f16' : el.backendSelect.value === 'cpu' ? 'GPU only' : el.modeSelect.value !== 'fast' ? 'fast mode only' : null;
  const f16 = el.precisionSelect.querySelector('option[value="f16"]');
  f16.disabled = why !== null;
  f16.textContent = why ? `f16 (${why})` : 'f16 (GPU)';
  if (why) el.precisionSelect.value = 'f32';
}

/** `{ kind: 'demo' }` | `{ kind: 'file', file }` | `{ kind: 'url', key, url, label }`; null: no file chosen yet. */
export function specFromPicker() {
  const v = el.modelSelect.value;
  if (v === 'demo') return { kind: 'demo' };
  if (v === 'file') {
    const file = el.weightsFile.files?.[0];
    if (!file) return null;
    return { kind: 'file', file };
  }
  const m = MODELS[v];
  return { kind: 'url', key: v, url: m.url, label: m.label };
}

function specLabel(spec) {
  if (spec.kind === 'demo') return 'the demo weights';
  if (spec.kind === 'file') return `“${spec.file.name}”`;
  return spec.label;
}

function setLoadingUI(on) {
  const controls = [el.loadModel, el.modelSelect, el.weightsFile, el.modeSelect, el.precisionSelect, el.sizeSelect, el.backendSelect];
  // Disabling the focused control drops its focus: a keyboard user gets it back afterwards.
  if (on) focusBack = controls.includes(document.activeElement) ? document.activeElement : null;
  for (const c of controls) c.disabled = on;
  el.loadModel.textContent = on ? 'Loading…' : 'Load model';
  if (!on && focusBack) {
    const now = document.activeElement;
    // Unless something else has taken the focus meanwhile.
    if (focusBack.isConnected && (!now || now === document.body || now === focusBack)) focusBack.focus();
    focusBack = null;
  }
}

/** The model picker shows `spec`: what loads now, so never a request still waiting. */
function showSpecInPicker(spec) {
  if (spec.kind === 'file' && el.weightsFile.files?.[0] !== spec.file) {
    const dt = new DataTransfer();
    dt.items.add(spec.file);
    el.weightsFile.files = dt.files;
  }
  pickModel(spec.kind === 'url' ? spec.key : spec.kind);
}

/** The status line while loading: the running load (`text`: its new line), and the one after it. */
function showLoading(text = loadingText) {
  loadingText = text;
  setStatus(pending ? `${text} Next: ${pending.recovering ? 'reloading ' : ''}${specLabel(pending.spec)}.` : text, true);
}

/** Shows the picked model's hint (and the file field for a local file). */
export function onModelSelect() {
  const v = el.modelSelect.value;
  el.weightsField.hidden = v !== 'file';
  if (v === 'demo') el.modelHint.textContent = 'Made in the page, no download. Untrained: the classes it predicts are meaningless.';
  else if (v === 'file') el.modelHint.textContent = 'A ResNet .safetensors file with torchvision/timm or Keras names (f32, f16 or bf16).';
  else el.modelHint.textContent = `${MODELS[v].label} trained on ImageNet (timm “tv_in1k”): downloads ${MODELS[v].mb} MB from huggingface.co once, then loads from the browser's cache.`;
}

/** Picks `value` in the model picker, as if the user had. */
export function pickModel(value) {
  el.modelSelect.value = value;
  onModelSelect();
}

// ------------------------------------------------------------------ loading

/**
 * Loads `spec`. Asked for while another load runs, it waits and runs once
 * that one has settled: one waits, the newest, except that a reload after a
 * device loss never displaces a load the user asked for.
 */
export async function loadModel(spec, { options = currentOptions(), recovering = null } = {}) {
  if (!spec) {
    showError('Choose a .safetensors file first (the “File” field), or pick another model.');
    return;
  }
  // A load the user asked for takes the pickers' mode and backend: no reload for them is left to come.
  if (!recovering) cancelReload();
  const req = { spec, options, recovering };
  if (page.loading) {
    // A reload after a device loss yields to a load the user asked for, but
    // is kept in case that load fails and leaves no model at all.
    if (recovering && pending && !pending.recovering) fallback = req;
    else {
      if (!recovering && pending?.recovering) fallback = pending;
      pending = req;
    }
    // Until it starts the picker shows the running load; the status line says what comes next.
    if (loadingSpec) showSpecInPicker(loadingSpec);
    showLoading();
    return;
  }
  page.loading = true;
  setLoadingUI(true);
  try {
    for (let r = req; r; ) {
      const installed = await loadOne(r);
      r = pending;
      pending = null;
      // The lost model that a waiting reload was for has been replaced already.
      if (r?.recovering && installed) {
        r = null;
        clearError();
        restorePickers(state.model);
      }
      if (!r) {
        if (!state.model && fallback) r = fallback;
        fallback = null;
      }
    }
  } finally {
    page.loading = false;
    loadingSpec = null;
    setLoadingUI(false);
  }
}

/** One load, with the controls already disabled; true when its model was installed. */
async function loadOne({ spec, options, recovering }) {
  loadingSpec = spec;
  showSpecInPicker(spec);
  if (!recovering) {
    clearError();
    // A load the user asked for starts afresh: a later loss is a first one.
    page.lostSinceFrame = false;
  }
  const what = specLabel(spec);
  showLoading(`Loading ${what}…`);
  startProgress(spec.kind !== 'demo');
  // URL weights: the package says (third argument) whether they come from the cache or the network.
  let fromCache = null;
  const onProgress = (loaded, total, how) => {
    if (how && how.fromCache !== fromCache) {
      fromCache = how.fromCache;
      // A fresh bar too: a cached copy that did not parse is downloaded again.
      startProgress(true);
      showLoading(fromCache ? `Loading ${what} from the browser's cache…` : `Downloading ${what} (once; cached afterwards)…`);
    }
    showProgress(loaded, total);
  };
  try {
    let source;
    if (spec.kind === 'demo') source = page.lib.demoWeights();
    else if (spec.kind === 'file') source = spec.file;
    else source = spec.url;
    const t0 = performance.now();
    const model = await page.lib.ResNet.load(source, { ...options, onProgress, cache: 'resnet-weights' });
    // Swap once the running frame has finished with the old model.
    await pauseLoop(() => install(model, spec, options.backend));
    const secs = ((performance.now() - t0) / 1000).toFixed(1);
    if (recovering) {
      clearError();
      setStatus(`${recovering}; ${model.info.description} was reloaded on ${model.info.backend === 'cpu' ? 'the CPU' : 'the GPU'} (${secs} s).`);
    } else {
      setStatus(`${model.info.description} ready (${secs} s). ${state.source ? '' : 'Now start the webcam, drop an image or pick a sample.'}`);
    }
    return true;
  } catch (e) {
    // A download that failed, or a file that is not ResNet weights: offer the demo or a local file.
    const offer = spec.kind === 'url' || (spec.kind === 'file' && e?.code === 'BAD_WEIGHTS');
    showError(`Could not load ${what}: ${messageOf(e)}`, { offer });
    setStatus(state.model ? `Still using ${state.model.info.description}.` : 'No model loaded.');
    // The pickers show what still runs, not the settings that failed.
    if (state.model) restorePickers(state.model);
    kick();
    return false;
  } finally {
    endProgress();
    hideSpinner();
  }
}

/** With the loop stopped: the new model replaces the old, which is freed. */
function install(model, spec, backend) {
  const old = state.model;
  loadedBackend = backend ?? 'auto';
  state.model = model;
  try {
    old?.dispose();
  } catch (e) {
    console.warn('dispose:', e);
  }
  loadedSpec = spec;
  state.loads += 1;
  showPlan(model);
  kick({ classify: true, full: true });
}

/** After a load or a re-plan: fresh panels, no overlay, no ratios, and the model's line. */
function showPlan(m) {
  buildPanels(m);
  resetOverlay();
  clearResiduals();
  showModelInfo(m, loadedSpec);
}

function showModelInfo(model, spec) {
  const i = model.info;
  const adapter = String(i.adapter || '').replace(/^[\s/]+/, '') || 'WebGPU';
  el.modelInfo.textContent = `${i.description} · ${i.classes} classes · ${i.inputSize[0]}×${i.inputSize[1]} input · ${i.mode} mode, ${i.precision} · ${adapter}${i.timestampQuery ? ' · GPU timestamps' : ''}`;
  // Which backend runs, and why (WebGPU there, asked for, or why not).
  const where = i.backend === 'cpu' ? 'CPU (WebAssembly SIMD, one thread: slower than a GPU, the same numbers)' : 'WebGPU';
  el.backendInfo.textContent = `Runs on ${where}: ${i.backendReason.replace(/\.$/, '')}.`;
  document.body.dataset.backend = i.backend;
  el.untrained.hidden = spec.kind !== 'demo';
  document.body.classList.toggle('demo-model', spec.kind === 'demo');
  el.sizeSelect.value = String(i.inputSize[0]);
  el.modeSelect.value = i.mode;
  el.precisionSelect.value = i.precision;
  resizeView();
}

/** The pickers back to the running model's settings (after a load or re-plan that failed). */
function restorePickers(model) {
  el.backendSelect.value = loadedBackend;
  showModelInfo(model, loadedSpec);
  syncPrecision();
}

/** Weights dropped on the page: load them, and show them in the picker. */
export function loadWeightsFile(file) {
  const dt = new DataTransfer();
  dt.items.add(file);
  el.weightsFile.files = dt.files;
  pickModel('file');
  loadModel({ kind: 'file', file });
}

/**
 * GPU device lost: reload the model (from the cache for URL sources) with
 * the backend picker's choice; lost again before the reloaded model has
 * classified a frame (however long the reload took), reload it on the CPU
 * instead of looping. Returns true when handled.
 */
export async function handleModelError(e, m) {
  if (e?.code !== 'DEVICE_LOST' || m !== state.model || !loadedSpec) return false;
  const msg = messageOf(e);
  const again = page.lostSinceFrame;
  page.lostSinceFrame = true;
  showError(again ? `The GPU device was lost again (${msg}); moving to the CPU backend…` : `The GPU device was lost (${msg}); reloading the model…`);
  const info = m.info;
  state.model = null;
  try {
    m.dispose();
  } catch {}
  // The picker's choice ('auto' falls back to the CPU where WebGPU has since
  // been switched off), not the backend that was just lost.
  const backend = again ? 'cpu' : el.backendSelect.value;
  if (again) el.backendSelect.value = 'cpu';
  const recovering = again ? 'The GPU device was lost twice' : 'The GPU device was lost';
  // Reload once the caller (the loop, or a re-plan) has unwound.
  const precision = again ? 'f32' : info.precision;
  if (again) syncPrecision();
  const spec = loadedSpec; // the lost model's, whatever loads meanwhile
  setTimeout(() => loadModel(spec, { options: { mode: info.mode, inputSize: info.inputSize, backend, precision }, recovering }), 0);
  return true;
}

// ------------------------------------------------------------------ input size

/** Re-plans the model for `size`×`size` with the loop stopped, so no frame reads panels of the old size. */
async function changeInputSize(size) {
  const m = state.model;
  if (!m) return;
  setStatus(`Re-planning for ${size}×${size}…`, true);
  await pauseLoop(async () => {
    try {
      await m.setInputSize(size);
    } catch (e) {
      if (m !== state.model) return;
      setStatus(`${m.info.description}.`);
      restorePickers(m);
      if (!(await handleModelError(e, m))) showError(messageOf(e));
      return;
    }
    if (m !== state.model) return; // swapped meanwhile: the new model has its own panels
    showPlan(m);
    setStatus(`${m.info.description} at ${size}×${size}.`);
    kick({ classify: true, full: true });
  });
}

// ------------------------------------------------------------------ controls

el.modelSelect.addEventListener('change', onModelSelect);
el.loadModel.addEventListener('click', () => loadModel(specFromPicker()));
el.weightsFile.addEventListener('change', () => {
  if (el.weightsFile.files?.length) {
    pickModel('file');
    loadModel(specFromPicker());
  }
});
// Arrowing through a closed select fires `change` at every step (Chrome):
// reload once the choice has rested this long, not once per step.
const RELOAD_DELAY_MS = 400;
let reloadTimer = null;
function reloadSoon() {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(() => {
    reloadTimer = null;
    // (Not gated on a live model: a device-loss reload may have taken it meanwhile; loadModel queues behind that.)
    if (loadedSpec) loadModel(loadedSpec);
  }, RELOAD_DELAY_MS);
}
function cancelReload() {
  clearTimeout(reloadTimer);
  reloadTimer = null;
}
el.modeSelect.addEventListener('change', () => {
  syncPrecision();
  // The mode changes the plan: reload (URL weights come from the cache).
  reloadSoon();
});
// Another backend or precision: reload the same weights that way.
el.backendSelect.addEventListener('change', () => {
  syncPrecision();
  reloadSoon();
});
el.precisionSelect.addEventListener('change', reloadSoon);
el.sizeSelect.addEventListener('change', () => changeInputSize(Number(el.sizeSelect.value)));
// Downloaded weights stay in the browser's Cache API until deleted here.
$('#clear-cache').addEventListener('click', async () => {
  if (!page.lib) return;
  const had = await page.lib.clearWeightsCache().catch(() => false);
  setStatus(had ? 'The cached weights were deleted: the next ImageNet model downloads again.' : 'No weights were cached.');
});

// The error area's way out after a failed load.
$('#error-use-demo').addEventListener('click', () => {
  pickModel('demo');
  loadModel({ kind: 'demo' });
});
$('#error-use-file').addEventListener('click', () => {
  pickModel('file');
  el.weightsFile.click();
});
