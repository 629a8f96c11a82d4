// The page: loads a ResNet (demo, ImageNet from the Hugging Face hub, or a
// local file), classifies the webcam, an uploaded image or a sample photo,
// and shows what every block computes.
//
// All calls on the model go through one loop (`pump`), so at most one
// classify is in flight, the synchronous calls (channelMeans, residuals,
// setBlockEnabled, …) never meet a running one, and the video keeps drawing
// on its own requestAnimationFrame.

// Imported dynamically in main(), so that a missing or broken build still
// leaves a readable message on the page instead of a blank one.
let ResNet;
let demoWeights;
let webgpuSupport;
let topIndices;

const $ = (sel) => document.querySelector(sel);
const HUB = (name) => `https://huggingface.co/timm/${name}.tv_in1k/resolve/main/model.safetensors`;
const MODELS = {
  resnet18: { label: 'ResNet-18', url: HUB('resnet18'), mb: 47 },
  resnet34: { label: 'ResNet-34', url: HUB('resnet34'), mb: 87 },
  resnet50: { label: 'ResNet-50', url: HUB('resnet50'), mb: 102 },
  resnet101: { label: 'ResNet-101', url: HUB('resnet101'), mb: 178 },
  resnet152: { label: 'ResNet-152', url: HUB('resnet152'), mb: 241 },
};
const PANELS_PER_FRAME = 3; // live: how many block panels are read back per frame
const KIND_LABEL = { stem: 'stem', convolutional: 'convolutional', identity: 'identity', head: 'head' };

// ------------------------------------------------------------------ state

/** What the tests (and a curious console) can see. */
const S = {
  model: null,
  lastResult: null,
  frames: 0,
  source: null, // { kind: 'camera' } | { kind: 'image', el, name }
  settled: 0, // full refreshes (classify + every panel) done
  loads: 0, // models loaded
  errors: [],
};
window.__resnet = S;

let labels = null; // ImageNet class names
let loadedSpec = null; // what the current model was loaded from, for reloads
let loading = false;
let stream = null; // webcam MediaStream
let selected = null; // { block, channel } shown over the frame
let panels = new Map(); // name -> panel
let rr = 0; // round-robin position over panels
let lastCam = null; // last class activation map
let lastResiduals = [];
const fpsTimes = [];

const el = {
  status: $('#status'),
  error: $('#error'),
  errorBox: $('#error-box'),
  errorActions: $('#error-actions'),
  spinner: $('#spinner'),
  progress: $('#progress'),
  progressText: $('#progress-text'),
  modelSelect: $('#model-select'),
  weightsFile: $('#weights-file'),
  weightsField: $('#weights-file-field'),
  modelHint: $('#model-hint'),
  loadModel: $('#load-model'),
  modeSelect: $('#mode-select'),
  sizeSelect: $('#size-select'),
  modelInfo: $('#model-info'),
  untrained: $('#untrained-note'),
  camStart: $('#camera-start'),
  camStop: $('#camera-stop'),
  video: $('#video'),
  imageFile: $('#image-file'),
  dropZone: $('#drop-zone'),
  view: $('#view'),
  overlay: $('#overlay'),
  stage: $('#stage'),
  stageEmpty: $('#stage-empty'),
  overlayCaption: $('#overlay-caption'),
  overlayText: $('#overlay-text'),
  camToggle: $('#cam-toggle'),
  alpha: $('#overlay-alpha'),
  top5: $('#top5'),
  fps: $('#fps'),
  latency: $('#latency'),
  frameCount: $('#frame-count'),
  stageTimes: $('#stage-times'),
  timingSource: $('#timing-source'),
  residualChart: $('#residual-chart'),
  blocks: $('#blocks'),
  channels: $('#channels-select'),
  colormap: $('#colormap-select'),
};

// ------------------------------------------------------------------ status and errors

function setStatus(text, busy = false) {
  el.status.textContent = text;
  el.spinner.hidden = !busy;
}

/** Shows a message in the always-visible error area. `offer`: show the demo / local-file way out. */
function showError(message, { offer = false } = {}) {
  console.warn('[resnet page]', message);
  S.errors.push(message);
  el.error.textContent = message;
  el.errorBox.hidden = false;
  el.errorActions.hidden = !offer;
}

function clearError() {
  el.error.textContent = '';
  el.errorBox.hidden = true;
  el.errorActions.hidden = true;
}

const messageOf = (e) => (e && (e.message || (typeof e === 'string' ? e : e.name))) || String(e);

$('#error-close').addEventListener('click', clearError);
$('#error-use-demo').addEventListener('click', () => {
  el.modelSelect.value = 'demo';
  onModelSelect();
  loadModel({ kind: 'demo' });
});
$('#error-use-file').addEventListener('click', () => {
  el.modelSelect.value = 'file';
  onModelSelect();
  el.weightsFile.click();
});

window.addEventListener('unhandledrejection', (ev) => {
  showError(`Unexpected error: ${messageOf(ev.reason)}`);
});

// ------------------------------------------------------------------ colour maps

// Polynomial fits of matplotlib's viridis and inferno (Matt Zucker, CC0).
const POLY = {
  viridis: [
    [0.2777273272234177, 0.005407344544966578, 0.3340998053353061],
    [0.1050930431085774, 1.404613529898575, 1.384590162594685],
    [-0.3308618287255563, 0.214847559468213, 0.09509516302823659],
    [-4.634230498983486, -5.799100973351585, -19.33244095627987],
    [6.228269936347081, 14.17993336680509, 56.69055260068105],
    [4.776384997670288, -13.74514537774601, -65.35303263337234],
    [-5.435455855934631, 4.645852612178535, 26.3124352495832],
  ],
  inferno: [
    [0.0002189403691192265, 0.001651004631001012, -0.01948089843709184],
    [0.1065134194856116, 0.5639564367884091, 3.932712388889277],
    [11.60249308247187, -3.972853965665698, -15.9423941062914],
    [-41.70399613139459, 17.43639888205313, 44.35414519872813],
    [77.162935699427, -33.40235894210092, -81.80730925738993],
    [-71.31942824499214, 32.62606426397723, 73.20951985803202],
    [25.13112622477341, -12.24266895238567, -23.07032500287172],
  ],
};

function makeLut(name) {
  const lut = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = i / 255;
    for (let c = 0; c < 3; c++) {
      let v;
      if (name === 'gray') v = t;
      else {
        const k = POLY[name];
        v = k[6][c];
        for (let j = 5; j >= 0; j--) v = v * t + k[j][c];
      }
      lut[i * 3 + c] = Math.round(Math.min(1, Math.max(0, v)) * 255);
    }
  }
  return lut;
}
const LUTS = { viridis: makeLut('viridis'), inferno: makeLut('inferno'), gray: makeLut('gray') };
const lut = () => LUTS[el.colormap.value] || LUTS.viridis;

const scratch = document.createElement('canvas');
const scratchCtx = scratch.getContext('2d');

/**
 * Colour-maps one H×W map into the scratch canvas (own min..max, or `range`).
 * `alphaByValue`: transparent where low (for the class activation map).
 */
function paintMap(data, offset, H, W, table, { range = null, alphaByValue = false } = {}) {
  let lo = Infinity;
  let hi = -Infinity;
  if (range) [lo, hi] = range;
  else {
    for (let i = 0; i < H * W; i++) {
      const v = data[offset + i];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  const span = hi - lo > 1e-12 ? hi - lo : 1;
  if (scratch.width !== W || scratch.height !== H) {
    scratch.width = W;
    scratch.height = H;
  }
  const img = scratchCtx.createImageData(W, H);
  const px = img.data;
  for (let i = 0; i < H * W; i++) {
    const t = Math.min(1, Math.max(0, (data[offset + i] - lo) / span));
    const k = Math.round(t * 255) * 3;
    px[i * 4] = table[k];
    px[i * 4 + 1] = table[k + 1];
    px[i * 4 + 2] = table[k + 2];
    px[i * 4 + 3] = alphaByValue ? Math.round(255 * Math.min(1, 1.3 * t * Math.sqrt(t))) : 255;
  }
  scratchCtx.putImageData(img, 0, 0);
  return scratch;
}

// ------------------------------------------------------------------ labels

async function loadLabels() {
  try {
    const r = await fetch('../data/imagenet_classes.txt');
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const lines = (await r.text()).split(/\r?\n/).map((s) => s.trim());
    while (lines.length && !lines[lines.length - 1]) lines.pop();
    if (lines.length !== 1000) throw new Error(`${lines.length} lines, expected 1000`);
    labels = lines;
  } catch (e) {
    labels = null;
    console.warn('ImageNet class names unavailable:', e);
  }
}

function labelOf(index) {
  const classes = S.model?.info.classes;
  if (labels && classes === labels.length) return labels[index];
  return `class ${index}`;
}

// ------------------------------------------------------------------ the loop

let pumpRunning = false;
let pumpIdle = Promise.resolve();
let dirty = false; // the still image needs (re)classifying
let wantFull = false; // refresh every panel after the next classify
let swapping = false; // a model swap waits for the loop to stop
const actions = []; // async (model) => …, run between frames

function kick({ classify = false, full = false } = {}) {
  if (classify) dirty = true;
  if (full) wantFull = true;
  if (!pumpRunning) pumpIdle = pump();
}

function enqueue(action) {
  actions.push(action);
  kick();
}

const cameraLive = () => S.source?.kind === 'camera' && el.video.readyState >= 2 && el.video.videoWidth > 0;
const nextFrame = () => new Promise((resolve) => {
  const t = setTimeout(resolve, 250);
  requestAnimationFrame(() => {
    clearTimeout(t);
    resolve();
  });
});

async function pump() {
  pumpRunning = true;
  try {
    for (;;) {
      const m = S.model;
      if (!m || swapping) break;
      if (actions.length) {
        const a = actions.shift();
        try {
          await a(m);
        } catch (e) {
          if (!(await handleModelError(e, m))) showError(messageOf(e));
        }
        continue;
      }
      const live = S.source?.kind === 'camera';
      if (!live && !(dirty && S.source)) break;
      if (live && !cameraLive()) {
        await nextFrame();
        continue;
      }
      const full = wantFull || !live;
      dirty = false;
      wantFull = false;
      const ok = await step(m, full);
      if (!ok) break;
      if (live) await nextFrame();
    }
  } finally {
    pumpRunning = false;
  }
}

/** One frame: classify, then update everything. Returns false to stop the loop. */
async function step(m, full) {
  const src = S.source;
  const frame = src.kind === 'camera' ? el.video : src.el;
  let res;
  try {
    res = await m.classify(frame, { topk: 5 });
  } catch (e) {
    if (await handleModelError(e, m)) return false;
    setStatus('Classifying failed.');
    showError(`Classifying failed: ${messageOf(e)}`);
    if (src.kind === 'camera') stopCamera();
    return false;
  }
  if (m !== S.model) return false;
  S.lastResult = res;
  S.frames += 1;
  const t = performance.now();
  fpsTimes.push(t);
  while (fpsTimes.length > 2 && t - fpsTimes[0] > 2000) fpsTimes.shift();
  renderTop5(res);
  renderMetrics(res, src.kind === 'camera');
  try {
    renderTimings(m.timings());
    lastResiduals = m.residuals();
    renderResiduals();
  } catch (e) {
    console.warn('stats unavailable:', e);
  }
  try {
    if (el.camToggle.checked && res.top.length) await updateCam(m, res.top[0].index);
    // Which panels to read back: all of them for a still image, a few per frame live.
    const names = [...panels.keys()];
    let todo;
    if (full) todo = names;
    else {
      todo = [];
      for (let i = 0; i < Math.min(PANELS_PER_FRAME, names.length); i++) todo.push(names[(rr + i) % names.length]);
      rr = (rr + PANELS_PER_FRAME) % Math.max(1, names.length);
      if (selected && !todo.includes(selected.block)) todo.push(selected.block);
    }
    for (const name of todo) {
      if (m !== S.model) return false;
      await refreshPanel(m, name);
    }
  } catch (e) {
    if (await handleModelError(e, m)) return false;
    showError(`Reading the activations failed: ${messageOf(e)}`);
    return false;
  }
  if (full) S.settled += 1;
  if (src.kind !== 'camera' && m === S.model && !loading) {
    setStatus(`${src.name}: ${labelOf(res.top[0]?.index ?? 0)} (${res.ms.toFixed(0)} ms).`);
  }
  return true;
}

// ------------------------------------------------------------------ loading models

function currentOptions() {
  return { mode: el.modeSelect.value, inputSize: Number(el.sizeSelect.value) };
}

function specFromPicker() {
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
  for (const c of [el.loadModel, el.modelSelect, el.weightsFile, el.modeSelect, el.sizeSelect]) c.disabled = on;
  el.loadModel.textContent = on ? 'Loading…' : 'Load model';
}

function onProgress(loaded, total) {
  el.progress.hidden = false;
  const mb = (n) => (n / 1e6).toFixed(1);
  if (total > 0) {
    el.progress.max = total;
    el.progress.value = loaded;
    el.progressText.textContent = `${mb(loaded)} / ${mb(total)} MB`;
  } else {
    el.progress.removeAttribute('value');
    el.progressText.textContent = `${mb(loaded)} MB`;
  }
}

async function loadModel(spec, { options = currentOptions(), recovering = false } = {}) {
  if (!spec) {
    showError('Choose a .safetensors file first (the “File” field), or pick another model.');
    return;
  }
  if (loading) return;
  loading = true;
  setLoadingUI(true);
  if (!recovering) clearError();
  const what = specLabel(spec);
  setStatus(spec.kind === 'url' ? `Downloading ${what} (once; cached afterwards)…` : `Loading ${what}…`, true);
  el.progress.hidden = spec.kind === 'demo';
  el.progress.value = 0;
  el.progressText.textContent = '';
  let model = null;
  try {
    let source;
    if (spec.kind === 'demo') source = demoWeights();
    else if (spec.kind === 'file') source = spec.file;
    else source = spec.url;
    const t0 = performance.now();
    model = await ResNet.load(source, { ...options, onProgress, cache: 'resnet-weights' });
    // Swap: let the running frame finish, then replace the model.
    swapping = true;
    await pumpIdle;
    const old = S.model;
    S.model = model;
    actions.length = 0; // queued for the old model (skip switches, re-plans)
    swapping = false;
    try {
      old?.dispose();
    } catch (e) {
      console.warn('dispose:', e);
    }
    loadedSpec = spec;
    S.loads += 1;
    selected = null;
    lastCam = null;
    hideOverlay();
    buildPanels(model);
    showModelInfo(model, spec);
    const secs = ((performance.now() - t0) / 1000).toFixed(1);
    if (recovering) {
      clearError();
      setStatus(`The GPU device was lost; ${model.info.description} was reloaded (${secs} s).`);
    } else {
      setStatus(`${model.info.description} ready (${secs} s). ${S.source ? '' : 'Now start the webcam, drop an image or pick a sample.'}`);
    }
    kick({ classify: true, full: true });
  } catch (e) {
    swapping = false;
    const msg = messageOf(e);
    if (spec.kind === 'url') {
      showError(`Could not load ${what}: ${msg}`, { offer: true });
    } else if (spec.kind === 'file') {
      showError(`Could not load ${what}: ${msg}`, { offer: /safetensors|ResNet|tensor|header/i.test(msg) });
    } else {
      showError(`Could not load ${what}: ${msg}`);
    }
    setStatus(S.model ? `Still using ${S.model.info.description}.` : 'No model loaded.');
    kick();
  } finally {
    loading = false;
    setLoadingUI(false);
    el.progress.hidden = true;
    el.progressText.textContent = '';
    el.spinner.hidden = true;
  }
}

function showModelInfo(model, spec) {
  const i = model.info;
  const adapter = String(i.adapter || '').replace(/^[\s/]+/, '') || 'WebGPU';
  el.modelInfo.textContent = `${i.description} · ${i.classes} classes · ${i.inputSize[0]}×${i.inputSize[1]} input · ${i.mode} mode · ${adapter}${i.timestampQuery ? ' · GPU timestamps' : ''}`;
  el.untrained.hidden = spec.kind !== 'demo';
  document.body.classList.toggle('demo-model', spec.kind === 'demo');
  el.sizeSelect.value = String(i.inputSize[0]);
  el.modeSelect.value = i.mode;
  resizeView();
}

let lastLoss = -Infinity;
/** GPU device lost: reload the model (from the cache for URL sources). Returns true when handled. */
async function handleModelError(e, m) {
  const msg = messageOf(e);
  if (!/lost/i.test(msg) || m !== S.model || !loadedSpec) return false;
  const now = performance.now();
  if (now - lastLoss < 10000) {
    showError(`The GPU device was lost again (${msg}). Reload the page, or try a smaller model or input size.`);
    return true;
  }
  lastLoss = now;
  showError(`The GPU device was lost (${msg}); reloading the model…`);
  const info = m.info;
  S.model = null;
  try {
    m.dispose();
  } catch {}
  // Queue the reload after this loop iteration has unwound.
  setTimeout(() => loadModel(loadedSpec, { options: { mode: info.mode, inputSize: info.inputSize }, recovering: true }), 0);
  return true;
}

// ------------------------------------------------------------------ model controls

function onModelSelect() {
  const v = el.modelSelect.value;
  el.weightsField.hidden = v !== 'file';
  if (v === 'demo') el.modelHint.textContent = 'Made in the page, no download. Untrained: the classes it predicts are meaningless.';
  else if (v === 'file') el.modelHint.textContent = 'A ResNet .safetensors file with torchvision/timm or Keras names (f32, f16 or bf16).';
  else el.modelHint.textContent = `${MODELS[v].label} trained on ImageNet (timm “tv_in1k”): downloads ${MODELS[v].mb} MB from huggingface.co once, then loads from the browser's cache.`;
}

el.modelSelect.addEventListener('change', onModelSelect);
el.loadModel.addEventListener('click', () => loadModel(specFromPicker()));
el.weightsFile.addEventListener('change', () => {
  if (el.weightsFile.files?.length) {
    el.modelSelect.value = 'file';
    onModelSelect();
    loadModel(specFromPicker());
  }
});
el.modeSelect.addEventListener('change', () => {
  // The mode changes the plan: reload (URL weights come from the cache).
  if (S.model && loadedSpec) loadModel(loadedSpec);
});
el.sizeSelect.addEventListener('change', () => {
  if (!S.model) return;
  const size = Number(el.sizeSelect.value);
  setStatus(`Re-planning for ${size}×${size}…`, true);
  enqueue(async (m) => {
    try {
      await m.setInputSize(size);
      selected = null;
      lastCam = null;
      hideOverlay();
      buildPanels(m);
      showModelInfo(m, loadedSpec);
      setStatus(`${m.info.description} at ${size}×${size}.`);
      kick({ classify: true, full: true });
    } catch (e) {
      setStatus(`${m.info.description}.`);
      throw e;
    }
  });
});

// ------------------------------------------------------------------ inputs

let objectUrl = null;

async function useImage(src, name) {
  const img = new Image();
  img.decoding = 'async';
  img.src = src;
  try {
    await img.decode();
  } catch {
    showError(`Could not open “${name}” as an image (${src.startsWith('blob:') ? 'not an image format this browser decodes' : 'missing? run tools/fetch_samples.sh for the samples'}).`);
    return;
  }
  if (stream) stopCamera({ snapshot: false });
  clearError();
  S.source = { kind: 'image', el: img, name };
  drawStill();
  if (!S.model) setStatus(loading ? 'The image will be classified once the model is loaded.' : 'Load a model to classify this image.');
  else setStatus(`Classifying ${name}…`, true);
  kick({ classify: true, full: true });
}

function useImageFile(file) {
  if (!file) return;
  if (/\.safetensors$/i.test(file.name)) {
    // Dropped weights: load them as the model.
    const dt = new DataTransfer();
    dt.items.add(file);
    el.weightsFile.files = dt.files;
    el.modelSelect.value = 'file';
    onModelSelect();
    loadModel({ kind: 'file', file });
    return;
  }
  if (file.type && !file.type.startsWith('image/')) {
    showError(`“${file.name}” is not an image (${file.type}).`);
    return;
  }
  if (objectUrl) URL.revokeObjectURL(objectUrl);
  objectUrl = URL.createObjectURL(file);
  useImage(objectUrl, file.name);
}

el.imageFile.addEventListener('change', () => {
  useImageFile(el.imageFile.files?.[0]);
  el.imageFile.value = '';
});

for (const b of document.querySelectorAll('.sample')) {
  b.addEventListener('click', () => useImage(new URL(b.dataset.src, location.href).href, b.title || b.dataset.src));
  const thumb = b.querySelector('img');
  thumb?.addEventListener('error', () => b.classList.add('missing'));
}

// Drag and drop: onto the drop zone or the frame. Elsewhere, never navigate away.
for (const target of [el.dropZone, el.stage]) {
  target.addEventListener('dragenter', (e) => {
    e.preventDefault();
    el.dropZone.classList.add('over');
  });
  target.addEventListener('dragover', (e) => {
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
  });
  target.addEventListener('dragleave', () => el.dropZone.classList.remove('over'));
  target.addEventListener('drop', (e) => {
    e.preventDefault();
    el.dropZone.classList.remove('over');
    useImageFile(e.dataTransfer.files?.[0]);
  });
}
window.addEventListener('dragover', (e) => e.preventDefault());
window.addEventListener('drop', (e) => e.preventDefault());

// ------------------------------------------------------------------ webcam

function cameraMessage(e) {
  switch (e?.name) {
    case 'NotAllowedError':
    case 'PermissionDeniedError':
    case 'SecurityError':
      return 'Camera access was denied. Allow the camera for this site (the camera icon in the address bar or the site settings) and press “Start webcam” again — or drop an image or pick a sample photo instead.';
    case 'NotFoundError':
    case 'DevicesNotFoundError':
    case 'OverconstrainedError':
      return 'No camera was found on this device. Plug one in and press “Start webcam” again — or drop an image or pick a sample photo instead.';
    case 'NotReadableError':
    case 'TrackStartError':
      return 'The camera could not be started: another application may be using it, or the operating system blocked it.';
    case 'AbortError':
      return 'Starting the camera was interrupted. Try again.';
    default:
      return `Could not start the camera: ${messageOf(e)}`;
  }
}

async function startCamera() {
  if (stream) return;
  if (!navigator.mediaDevices?.getUserMedia) {
    showError('This browser gives the page no camera access (it needs a secure context, https or localhost). Drop an image or pick a sample instead.');
    return;
  }
  el.camStart.disabled = true;
  setStatus('Asking for the camera…', true);
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 }, facingMode: 'user' },
      audio: false,
    });
    el.video.srcObject = stream;
    for (const t of stream.getVideoTracks()) {
      t.addEventListener('ended', () => {
        if (stream) {
          stopCamera();
          showError('The camera stopped (unplugged, or taken by another application).');
        }
      });
    }
    await el.video.play();
    clearError();
    S.source = { kind: 'camera' };
    el.stage.classList.add('live');
    el.camStop.disabled = false;
    fpsTimes.length = 0;
    setStatus(S.model ? 'Webcam live.' : loading ? 'Webcam live; waiting for the model…' : 'Webcam live. Load a model to classify it.');
    kick({ full: true });
  } catch (e) {
    if (stream) for (const t of stream.getTracks()) t.stop();
    stream = null;
    el.video.srcObject = null;
    el.camStart.disabled = false;
    setStatus(S.model ? `${S.model.info.description} ready.` : 'No model loaded.');
    showError(cameraMessage(e));
  } finally {
    el.spinner.hidden = true;
  }
}

/** Stops the webcam; by default its last frame stays as a still input. */
function stopCamera({ snapshot = true } = {}) {
  if (snapshot && S.source?.kind === 'camera' && el.video.videoWidth) {
    const c = document.createElement('canvas');
    c.width = el.video.videoWidth;
    c.height = el.video.videoHeight;
    c.getContext('2d').drawImage(el.video, 0, 0);
    S.source = { kind: 'image', el: c, name: 'the last webcam frame' };
  } else if (S.source?.kind === 'camera') {
    S.source = null;
  }
  if (stream) for (const t of stream.getTracks()) t.stop();
  stream = null;
  el.video.srcObject = null;
  el.stage.classList.remove('live');
  el.camStart.disabled = false;
  el.camStop.disabled = true;
  el.fps.textContent = '–';
  drawStill();
}

el.camStart.addEventListener('click', startCamera);
el.camStop.addEventListener('click', () => {
  stopCamera();
  setStatus('Webcam stopped.');
});

// ------------------------------------------------------------------ the frame view

function inputSize() {
  return S.model?.info.inputSize ?? [Number(el.sizeSelect.value), Number(el.sizeSelect.value)];
}

function resizeView() {
  const [h, w] = inputSize();
  const W = 448;
  const H = Math.round((W * h) / w);
  for (const c of [el.view, el.overlay]) {
    if (c.width !== W || c.height !== H) {
      c.width = W;
      c.height = H;
    }
  }
  el.stage.style.aspectRatio = `${w} / ${h}`;
  drawStill();
  drawOverlay();
}

/** The centre crop the network sees (shorter side to N·256/224, then N×M). */
function cropOf(srcW, srcH) {
  const [h, w] = inputSize();
  const s = (Math.min(h, w) * 256) / 224 / Math.min(srcW, srcH);
  const cw = Math.min(srcW, w / s);
  const ch = Math.min(srcH, h / s);
  return [(srcW - cw) / 2, (srcH - ch) / 2, cw, ch];
}

function drawSource(src, sw, sh) {
  const ctx = el.view.getContext('2d');
  const [x, y, cw, ch] = cropOf(sw, sh);
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(src, x, y, cw, ch, 0, 0, el.view.width, el.view.height);
}

function drawStill() {
  const s = S.source;
  el.stageEmpty.hidden = !!s;
  if (!s || s.kind !== 'image') return;
  const w = s.el.naturalWidth || s.el.width;
  const h = s.el.naturalHeight || s.el.height;
  if (w && h) drawSource(s.el, w, h);
}

function videoLoop() {
  if (S.source?.kind === 'camera' && el.video.readyState >= 2 && el.video.videoWidth) {
    drawSource(el.video, el.video.videoWidth, el.video.videoHeight);
    el.stageEmpty.hidden = true;
  }
  requestAnimationFrame(videoLoop);
}
requestAnimationFrame(videoLoop);

// Overlay: a selected channel, else the class activation map when switched on.
function drawOverlay() {
  const ctx = el.overlay.getContext('2d');
  ctx.clearRect(0, 0, el.overlay.width, el.overlay.height);
  const alpha = Number(el.alpha.value);
  if (selected) {
    const p = panels.get(selected.block);
    const k = p?.last?.chans.indexOf(selected.channel) ?? -1;
    if (k < 0) return;
    const { H, W, data } = p.last;
    const c = paintMap(data, k * H * W, H, W, lut());
    ctx.globalAlpha = alpha;
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = 'high';
    ctx.drawImage(c, 0, 0, el.overlay.width, el.overlay.height);
    ctx.globalAlpha = 1;
    el.overlayText.textContent = `${selected.block} · channel ${selected.channel} (${H}×${W}) over the input`;
    el.overlayCaption.hidden = false;
  } else if (el.camToggle.checked && lastCam) {
    const { width, height, data, index } = lastCam;
    const c = paintMap(data, 0, height, width, LUTS.inferno, { alphaByValue: true });
    ctx.globalAlpha = Math.min(1, alpha + 0.15);
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = 'high';
    ctx.drawImage(c, 0, 0, el.overlay.width, el.overlay.height);
    ctx.globalAlpha = 1;
    el.overlayText.textContent = `Class activation map: ${labelOf(index)}`;
    el.overlayCaption.hidden = false;
  } else {
    el.overlayCaption.hidden = true;
  }
}

function hideOverlay() {
  selected = null;
  for (const p of panels.values()) p.canvas && drawPanelSelection(p);
  drawOverlay();
}

$('#overlay-close').addEventListener('click', () => {
  if (selected) {
    const p = panels.get(selected.block);
    selected = null;
    if (p) redrawPanel(p);
  } else el.camToggle.checked = false;
  drawOverlay();
});
el.alpha.addEventListener('input', drawOverlay);

async function updateCam(m, index) {
  const cam = await m.classActivationMap(index);
  lastCam = { ...cam, index };
  drawOverlay();
}

el.camToggle.addEventListener('change', () => {
  if (el.camToggle.checked && S.lastResult?.top.length) {
    enqueue((m) => updateCam(m, S.lastResult.top[0].index));
  } else drawOverlay();
});

// ------------------------------------------------------------------ results

function renderTop5(res) {
  const items = res.top.map((t) => {
    const li = document.createElement('li');
    li.dataset.index = String(t.index);
    const pct = (t.probability * 100).toFixed(1);
    const name = document.createElement('span');
    name.className = 'label';
    name.textContent = labelOf(t.index);
    name.title = `class ${t.index}`;
    const p = document.createElement('span');
    p.className = 'pct';
    p.textContent = `${pct}%`;
    const bar = document.createElement('span');
    bar.className = 'bar';
    bar.style.setProperty('--p', String(Math.max(0, Math.min(1, t.probability))));
    li.append(name, p, bar);
    return li;
  });
  el.top5.replaceChildren(...items);
}

function renderMetrics(res, live) {
  el.latency.textContent = `${res.ms.toFixed(res.ms < 10 ? 1 : 0)} ms`;
  el.frameCount.textContent = String(S.frames);
  if (live && fpsTimes.length > 1) {
    const span = (fpsTimes[fpsTimes.length - 1] - fpsTimes[0]) / 1000;
    el.fps.textContent = span > 0 ? ((fpsTimes.length - 1) / span).toFixed(1) : '–';
  } else if (!live) el.fps.textContent = '–';
}

function renderTimings(t) {
  el.timingSource.textContent = t.source === 'gpu' ? '(GPU timestamps)' : '(wall clock)';
  const rows = [];
  if (t.stages.length) {
    const max = Math.max(...t.stages.map((s) => s.ms), 1e-9);
    for (const s of t.stages) {
      const row = document.createElement('div');
      row.className = 'st-row';
      row.dataset.stage = s.name;
      row.innerHTML = `<span class="st-name"></span><span class="st-bar"><span></span></span><span class="st-ms"></span>`;
      row.querySelector('.st-name').textContent = s.name;
      row.querySelector('.st-bar > span').style.width = `${(100 * s.ms) / max}%`;
      row.querySelector('.st-ms').textContent = `${s.ms.toFixed(s.ms < 10 ? 2 : 1)} ms`;
      rows.push(row);
    }
  }
  const total = document.createElement('div');
  total.className = 'st-row st-total';
  total.innerHTML = `<span class="st-name">total</span><span></span><span class="st-ms"></span>`;
  total.querySelector('.st-ms').textContent = `${t.totalMs.toFixed(1)} ms`;
  rows.push(total);
  el.stageTimes.replaceChildren(...rows);
}

function renderResiduals() {
  const byName = new Map(lastResiduals.map((r) => [r.name, r]));
  for (const p of panels.values()) {
    if (!p.ratioEl) continue;
    const r = byName.get(p.name);
    const skipped = p.toggle && !p.toggle.checked;
    if (!r) {
      p.ratioEl.querySelector('.ratio-num').textContent = '–';
      continue;
    }
    p.ratioEl.querySelector('.ratio-num').textContent = skipped ? 'skipped' : r.ratio.toFixed(3);
    p.ratioEl.querySelector('.ratio-fill').style.width = `${skipped ? 0 : Math.min(100, r.ratio * 100)}%`;
    p.ratioEl.title = `‖F(x)‖ = ${r.main.toFixed(2)}, ‖x‖ = ${r.shortcut.toFixed(2)}`;
  }
  drawResidualChart();
}

function drawResidualChart() {
  const c = el.residualChart;
  const dpr = window.devicePixelRatio || 1;
  const cssW = c.clientWidth || 640;
  const cssH = 180;
  if (c.width !== Math.round(cssW * dpr)) {
    c.width = Math.round(cssW * dpr);
    c.height = Math.round(cssH * dpr);
  }
  const ctx = c.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, cssW, cssH);
  const rs = lastResiduals;
  const padL = 34;
  const padB = 44;
  const top = 10;
  const plotH = cssH - padB - top;
  const max = Math.max(1, ...rs.map((r) => r.ratio));
  ctx.font = '11px system-ui, sans-serif';
  ctx.strokeStyle = 'rgba(255,255,255,0.15)';
  ctx.fillStyle = '#9aa3b5';
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (const v of [0, 0.5, 1, max > 1.5 ? Math.floor(max) : null].filter((v) => v !== null)) {
    const y = top + plotH * (1 - v / max);
    ctx.beginPath();
    ctx.moveTo(padL, y);
    ctx.lineTo(cssW, y);
    ctx.stroke();
    ctx.fillText(v.toFixed(1), padL - 4, y);
  }
  if (!rs.length) {
    ctx.textAlign = 'center';
    ctx.fillText('Classify something to see the residual ratios.', (cssW + padL) / 2, top + plotH / 2);
    return;
  }
  const slot = (cssW - padL) / rs.length;
  const bw = Math.max(2, Math.min(28, slot * 0.7));
  rs.forEach((r, i) => {
    const p = panels.get(r.name);
    const skipped = p?.toggle && !p.toggle.checked;
    const x = padL + slot * i + (slot - bw) / 2;
    const hgt = skipped ? 0 : (plotH * Math.min(r.ratio, max)) / max;
    ctx.fillStyle = p?.kind === 'convolutional' ? '#e0a040' : '#4cc0a0';
    ctx.fillRect(x, top + plotH - hgt, bw, hgt);
    if (skipped) {
      ctx.fillStyle = '#ff6b6b';
      ctx.fillText('×', x + bw / 2 + 3, top + plotH - 6);
    }
    if (slot >= 14) {
      ctx.save();
      ctx.translate(x + bw / 2, top + plotH + 6);
      ctx.rotate(-Math.PI / 4);
      ctx.fillStyle = '#9aa3b5';
      ctx.textAlign = 'right';
      ctx.fillText(r.name, 0, 0);
      ctx.restore();
    }
  });
  ctx.textAlign = 'left';
  ctx.fillStyle = '#4cc0a0';
  ctx.fillRect(cssW - 190, 4, 10, 10);
  ctx.fillStyle = '#9aa3b5';
  ctx.fillText('identity', cssW - 176, 9);
  ctx.fillStyle = '#e0a040';
  ctx.fillRect(cssW - 120, 4, 10, 10);
  ctx.fillStyle = '#9aa3b5';
  ctx.fillText('convolutional', cssW - 106, 9);
}
window.addEventListener('resize', () => drawResidualChart());

// ------------------------------------------------------------------ activation panels

const TILE = 48; // CSS px per feature map
const GAP = 3;

function buildPanels(m) {
  panels = new Map();
  rr = 0;
  const blocks = m.blocks();
  const stages = new Map();
  for (const b of blocks) {
    if (!stages.has(b.stage)) stages.set(b.stage, []);
    stages.get(b.stage).push(b);
  }
  const groups = [];
  for (const [stage, bs] of stages) {
    const g = document.createElement('div');
    g.className = 'stage-group';
    const kind = bs[0].kind;
    const [C, H, W] = bs[bs.length - 1].shape;
    const title = document.createElement('h3');
    title.textContent =
      kind === 'stem'
        ? `Stem · ${H}×${W}`
        : kind === 'head'
          ? `Head · global average pool → dense (${m.info.classes} classes)`
          : `Stage ${stage} · ${C} channels at ${H}×${W}`;
    const row = document.createElement('div');
    row.className = 'stage-row';
    for (const b of bs) row.append(makePanel(b).root);
    g.append(title, row);
    groups.push(g);
  }
  el.blocks.replaceChildren(...groups);
  lastResiduals = [];
  drawResidualChart();
}

function makePanel(b) {
  const [C, H, W] = b.shape;
  const root = document.createElement('article');
  root.className = `block-panel kind-${b.kind}`;
  root.dataset.block = b.name;
  root.dataset.kind = b.kind;
  const head = document.createElement('header');
  const name = document.createElement('span');
  name.className = 'bp-name';
  name.textContent = b.name;
  const kind = document.createElement('span');
  kind.className = 'bp-kind';
  kind.textContent = KIND_LABEL[b.kind] ?? b.kind;
  if (b.kind === 'identity') kind.title = 'Identity block: the shortcut is the input itself';
  const meta = document.createElement('span');
  meta.className = 'bp-meta';
  meta.textContent = `stage ${b.stage} · ${C}×${H}×${W}`;
  head.append(name, kind, meta);
  const canvas = document.createElement('canvas');
  canvas.className = 'bp-maps';
  const p = { name: b.name, kind: b.kind, shape: b.shape, root, canvas, last: null, toggle: null, ratioEl: null, cols: 4, count: 0 };
  root.append(head, canvas);
  if (b.kind === 'head') {
    canvas.classList.add('strip');
    canvas.title = 'The pooled feature vector (one bar per channel) that the dense layer turns into class scores';
    const note = document.createElement('p');
    note.className = 'bp-note';
    note.textContent = `${C} channel averages → dense → ${S.model?.info.classes ?? ''} logits`;
    root.append(note);
  } else {
    canvas.title = 'Click a feature map to lay it over the input';
    canvas.addEventListener('click', (e) => onTileClick(p, e));
  }
  if (b.kind === 'identity' || b.kind === 'convolutional') {
    const foot = document.createElement('footer');
    const ratio = document.createElement('span');
    ratio.className = 'ratio';
    ratio.dataset.block = b.name;
    ratio.innerHTML = '<span class="ratio-label">‖F(x)‖/‖x‖</span><span class="ratio-bar"><span class="ratio-fill"></span></span><span class="ratio-num">–</span>';
    p.ratioEl = ratio;
    foot.append(ratio);
    if (b.kind === 'identity') {
      const lab = document.createElement('label');
      lab.className = 'skip';
      lab.title = 'Unticked: the block is skipped, its output is its input';
      const t = document.createElement('input');
      t.type = 'checkbox';
      t.className = 'skip-toggle';
      t.dataset.block = b.name;
      t.checked = safe(() => S.model?.blockEnabled(b.name), true) ?? true;
      t.addEventListener('change', () => onSkipToggle(p, t));
      lab.append(t, document.createTextNode(' on'));
      foot.append(lab);
      p.toggle = t;
    } else {
      kind.title = 'Convolutional block: the shortcut is a strided 1×1 convolution (with batchnorm), to change the shape';
    }
    root.append(foot);
  } else if (b.kind === 'stem') {
    const n = document.createElement('p');
    n.className = 'bp-note';
    n.textContent = '7×7/2 conv · BN · ReLU · 3×3/2 max pool';
    root.append(n);
  }
  sizePanelCanvas(p);
  panels.set(b.name, p);
  return p;
}

function safe(fn, fallback) {
  try {
    return fn();
  } catch {
    return fallback;
  }
}

function nChannels(p) {
  return Math.min(Number(el.channels.value) || 8, p.shape[0]);
}

function sizePanelCanvas(p) {
  const dpr = window.devicePixelRatio || 1;
  if (p.kind === 'head') {
    const w = 4 * TILE + 3 * GAP;
    const h = 64;
    p.canvas.style.width = `${w}px`;
    p.canvas.style.height = `${h}px`;
    p.canvas.width = Math.round(w * dpr);
    p.canvas.height = Math.round(h * dpr);
    return;
  }
  const [, H, W] = p.shape;
  const n = nChannels(p);
  p.cols = Math.min(4, n);
  p.rows = Math.ceil(n / p.cols);
  p.tw = TILE;
  p.th = Math.max(8, Math.round((TILE * H) / W));
  const w = p.cols * p.tw + (p.cols - 1) * GAP;
  const h = p.rows * p.th + (p.rows - 1) * GAP;
  p.canvas.style.width = `${w}px`;
  p.canvas.style.height = `${h}px`;
  p.canvas.width = Math.round(w * dpr);
  p.canvas.height = Math.round(h * dpr);
}

async function refreshPanel(m, name) {
  const p = panels.get(name);
  if (!p) return;
  if (p.kind === 'head') {
    let v = m.channelMeans(name);
    if (!v || v.length !== p.shape[0]) v = (await m.activation(name)).data;
    p.last = { vector: v };
    redrawPanel(p);
    return;
  }
  const means = m.channelMeans(name);
  const n = nChannels(p);
  const chans = means && means.length ? topIndices(means, n) : Array.from({ length: n }, (_, i) => i);
  const shown = chans.length;
  if (selected?.block === name && !chans.includes(selected.channel)) chans.push(selected.channel);
  const a = await m.activation(name, { channels: chans });
  if (m !== S.model || panels.get(name) !== p) return;
  const [, H, W] = a.shape;
  p.last = { chans, shown, H, W, data: a.data };
  redrawPanel(p);
  if (selected?.block === name) drawOverlay();
}

function redrawPanel(p) {
  const ctx = p.canvas.getContext('2d');
  const dpr = window.devicePixelRatio || 1;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  const cssW = p.canvas.width / dpr;
  const cssH = p.canvas.height / dpr;
  ctx.clearRect(0, 0, cssW, cssH);
  if (!p.last) return;
  if (p.kind === 'head') {
    const v = p.last.vector;
    let hi = 0;
    for (const x of v) if (x > hi) hi = x;
    const table = lut();
    const bw = cssW / v.length;
    for (let i = 0; i < v.length; i++) {
      const t = hi > 0 ? Math.max(0, v[i]) / hi : 0;
      const k = Math.round(t * 255) * 3;
      ctx.fillStyle = `rgb(${table[k]},${table[k + 1]},${table[k + 2]})`;
      const h = Math.max(1, t * (cssH - 2));
      ctx.fillRect(i * bw, cssH - h, Math.max(bw, 1), h);
    }
    return;
  }
  const { shown, H, W, data } = p.last;
  const table = lut();
  ctx.imageSmoothingEnabled = false;
  for (let i = 0; i < shown; i++) {
    const c = paintMap(data, i * H * W, H, W, table);
    const x = (i % p.cols) * (p.tw + GAP);
    const y = Math.floor(i / p.cols) * (p.th + GAP);
    ctx.drawImage(c, x, y, p.tw, p.th);
  }
  drawPanelSelection(p);
}

function drawPanelSelection(p) {
  if (!p.last || p.kind === 'head') return;
  const ctx = p.canvas.getContext('2d');
  if (selected?.block !== p.name) return;
  const i = p.last.chans.indexOf(selected.channel);
  if (i < 0 || i >= p.last.shown) return;
  const x = (i % p.cols) * (p.tw + GAP);
  const y = Math.floor(i / p.cols) * (p.th + GAP);
  ctx.strokeStyle = '#fff';
  ctx.lineWidth = 2;
  ctx.strokeRect(x + 1, y + 1, p.tw - 2, p.th - 2);
}

function onTileClick(p, e) {
  if (!p.last) return;
  const r = p.canvas.getBoundingClientRect();
  const x = ((e.clientX - r.left) / r.width) * (p.cols * p.tw + (p.cols - 1) * GAP);
  const y = ((e.clientY - r.top) / r.height) * (p.rows * p.th + (p.rows - 1) * GAP);
  const col = Math.floor(x / (p.tw + GAP));
  const row = Math.floor(y / (p.th + GAP));
  const i = row * p.cols + col;
  if (col >= p.cols || i < 0 || i >= p.last.shown) return;
  const ch = p.last.chans[i];
  const prev = selected && panels.get(selected.block);
  if (selected?.block === p.name && selected.channel === ch) selected = null;
  else selected = { block: p.name, channel: ch };
  if (prev && prev !== p) redrawPanel(prev);
  redrawPanel(p);
  drawOverlay();
  for (const q of panels.values()) q.root.classList.toggle('selected', selected?.block === q.name);
}

function onSkipToggle(p, t) {
  const on = t.checked;
  p.root.classList.toggle('skipped', !on);
  enqueue(async (m) => {
    try {
      m.setBlockEnabled(p.name, on);
    } catch (e) {
      t.checked = !on;
      p.root.classList.toggle('skipped', on);
      throw e;
    }
    setStatus(`${p.name} ${on ? 'enabled' : 'skipped: its output is now its input'}.`);
    kick({ classify: true, full: true });
  });
}

el.channels.addEventListener('change', () => {
  for (const p of panels.values()) sizePanelCanvas(p);
  if (S.model && S.frames) {
    for (const p of panels.values()) redrawPanel(p);
    if (S.source?.kind !== 'camera') enqueue(async (m) => {
      for (const name of panels.keys()) await refreshPanel(m, name);
    });
  }
});
el.colormap.addEventListener('change', () => {
  for (const p of panels.values()) redrawPanel(p);
  drawOverlay();
});

// ------------------------------------------------------------------ start

async function main() {
  onModelSelect();
  resizeView();
  drawResidualChart();
  const params = new URLSearchParams(location.search);
  const pick = params.get('model');
  if (params.get('size') && [...el.sizeSelect.options].some((o) => o.value === params.get('size'))) el.sizeSelect.value = params.get('size');
  if (params.get('size') && ![...el.sizeSelect.options].some((o) => o.value === params.get('size'))) {
    const o = new Option(`${params.get('size')} × ${params.get('size')}`, params.get('size'));
    el.sizeSelect.add(o);
    el.sizeSelect.value = o.value;
  }
  if (params.get('mode') === 'inspect' || params.get('mode') === 'fast') el.modeSelect.value = params.get('mode');
  const labelsReady = loadLabels();
  setStatus('Loading the engine…', true);
  try {
    ({ ResNet, demoWeights, webgpuSupport, topIndices } = await import('../js/index.js'));
  } catch (e) {
    setStatus('The engine did not load.');
    showError(`Could not load the WebAssembly engine (../js/index.js, ../pkg/): ${messageOf(e)}. Build it with tools/build_wasm.sh.`);
    return;
  }
  setStatus('Checking for WebGPU…', true);
  const support = await webgpuSupport().catch((e) => ({ ok: false, message: messageOf(e) }));
  await labelsReady;
  if (!support.ok) {
    setStatus('WebGPU is not available here.');
    showError(support.message);
    return;
  }
  // Start with the offline demo weights (small, no download) unless told otherwise.
  const want = pick ?? 'demo';
  if (want === 'none') {
    setStatus('Pick a model and press “Load model”.');
    return;
  }
  if (want in MODELS || want === 'demo') {
    el.modelSelect.value = want;
    onModelSelect();
    await loadModel(specFromPicker());
  } else setStatus('Pick a model and press “Load model”.');
  const sample = params.get('sample');
  if (sample) document.querySelector(`.sample[data-src$="/${CSS.escape(sample)}"]`)?.click();
}

main().catch((e) => {
  setStatus('The page failed to start.');
  showError(messageOf(e));
});
