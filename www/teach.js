// Teach mode: record your own classes from the webcam (or images), train
// the network on them right here, watch the loss, the accuracy and the
// gradient reaching every block, read the confusion matrix, then classify
// live with the new classes; keep or share the model and the recordings.
//
// Examples are kept as JPEG data URLs of the whole frame (shorter side
// EXAMPLE_SIDE): thumbnails, training input and the recordings file all
// come from them. Each training run starts from the weights the model had
// before Teach mode first trained it, so runs do not pile up.

import { state } from './state.js';
import { messageOf, setStatus, showError, clearError } from './status.js';
import { kick } from './loop.js';
import { loadModel, loadWeightsFile } from './models.js';
import { LUTS } from './colormaps.js';
import { showGradients } from './panels.js';
import { chartContext } from './results.js';

/** Viridis at `t` in 0…1, as [r, g, b]. */
const viridis = (t) => {
  const i = Math.max(0, Math.min(255, Math.round(t * 255))) * 3;
  return [LUTS.viridis[i], LUTS.viridis[i + 1], LUTS.viridis[i + 2]];
};

const MAX_EXAMPLES = 1000; // all classes together: memory stays bounded
const RECORD_MS = 100; // 10 frames a second while a record button is held
const EXAMPLE_SIDE = 224; // the shorter side of a kept frame
const FORMAT = 'resnet-teach-recordings';

const $ = (sel) => document.querySelector(sel);
const el = {
  card: $('#teach'),
  classes: $('#teach-classes'),
  addClass: $('#teach-add-class'),
  count: $('#teach-count'),
  train: $('#teach-train'),
  stop: $('#teach-stop'),
  what: $('#teach-what'),
  epochs: $('#teach-epochs'),
  lr: $('#teach-lr'),
  augment: $('#teach-augment'),
  backend: $('#teach-backend'),
  progress: $('#teach-progress'),
  progressText: $('#teach-progress-text'),
  curves: $('#teach-curves'),
  grads: $('#teach-grads'),
  gradsText: $('#teach-grads-text'),
  confusion: $('#teach-confusion'),
  cell: $('#teach-cell'),
  useOriginal: $('#teach-use-original'),
  useTrained: $('#teach-use-trained'),
  saveModel: $('#teach-save-model'),
  saveData: $('#teach-save-data'),
  loadFile: $('#teach-load-file'),
  clear: $('#teach-clear'),
  message: $('#teach-message'),
};

/** What Teach mode holds; `window.__teach` for the tests. */
export const teach = {
  /** `[{ id, name, examples: [{ id, url }] }]` */
  classes: [],
  /** The weights training starts from, and the model they came from. */
  base: null,
  /** The models Teach mode made or loaded (trained in place, or reloaded from its bytes). */
  own: new WeakSet(),
  /** The last run's trained weights, class names and history. */
  trained: null,
  history: [],
  /** Per step, per block: ‖∂L/∂x‖ at the block's input (null where none). */
  gradSteps: [],
  blockNames: [],
  /** `{ example, label, predicted }` of the last run's held-out examples, and the examples they index. */
  validation: [],
  validationExamples: [],
  training: null, // the AbortController of a run
  runs: 0,
  recording: null, // `{ cls, timer }`
};
window.__teach = teach;

let nextId = 1;
const total = () => teach.classes.reduce((n, c) => n + c.examples.length, 0);

function say(text) {
  el.message.textContent = text;
}

function fail(text) {
  say(text);
  showError(text);
}

// ------------------------------------------------------------------ classes

function addClass(name) {
  const c = { id: nextId++, name: name ?? `Class ${teach.classes.length + 1}`, examples: [] };
  teach.classes.push(c);
  render();
  return c;
}

function removeClass(c) {
  stopRecording();
  teach.classes = teach.classes.filter((x) => x !== c);
  render();
}

function render() {
  const rows = teach.classes.map((c) => classRow(c));
  el.classes.replaceChildren(...rows);
  el.count.textContent = `${total()} of at most ${MAX_EXAMPLES} examples`;
  el.train.disabled = !!teach.training;
  el.stop.disabled = !teach.training;
}

function classRow(c) {
  const row = document.createElement('div');
  row.className = 'teach-class';
  row.dataset.id = String(c.id);
  const head = document.createElement('div');
  head.className = 'teach-class-head';
  const name = document.createElement('input');
  name.type = 'text';
  name.value = c.name;
  name.className = 'teach-name';
  name.setAttribute('aria-label', `Name of class ${teach.classes.indexOf(c) + 1}`);
  name.addEventListener('change', () => {
    c.name = name.value.trim() || c.name;
    name.value = c.name;
  });
  const count = document.createElement('span');
  count.className = 'teach-n muted';
  count.textContent = `${c.examples.length} example${c.examples.length === 1 ? '' : 's'}`;
  const rec = document.createElement('button');
  rec.type = 'button';
  rec.className = 'teach-record';
  rec.textContent = 'Hold to record';
  rec.title = 'Hold (mouse, touch, Space or Enter) to record frames of the current input into this class, 10 a second';
  rec.setAttribute('aria-pressed', 'false');
  rec.setAttribute('aria-label', `Hold to record frames into ${c.name}`);
  rec.addEventListener('pointerdown', (e) => {
    rec.setPointerCapture?.(e.pointerId);
    startRecording(c, rec);
  });
  for (const ev of ['pointerup', 'pointercancel', 'lostpointercapture']) rec.addEventListener(ev, () => stopRecording());
  rec.addEventListener('keydown', (e) => {
    if ((e.key === ' ' || e.key === 'Enter') && !e.repeat) {
      e.preventDefault();
      startRecording(c, rec);
    }
  });
  rec.addEventListener('keyup', (e) => {
    if (e.key === ' ' || e.key === 'Enter') stopRecording();
  });
  rec.addEventListener('blur', () => stopRecording());
  const pick = document.createElement('label');
  pick.className = 'teach-pick button-like';
  pick.textContent = 'Add images…';
  const file = document.createElement('input');
  file.type = 'file';
  file.accept = 'image/*';
  file.multiple = true;
  file.className = 'visually-hidden';
  file.setAttribute('aria-label', `Add images to ${c.name}`);
  file.addEventListener('change', () => {
    addImageFiles(c, [...file.files]);
    file.value = '';
  });
  pick.append(file);
  const del = document.createElement('button');
  del.type = 'button';
  del.className = 'link';
  del.textContent = 'Remove class';
  del.addEventListener('click', () => removeClass(c));
  head.append(name, count, rec, pick, del);
  const strip = document.createElement('div');
  strip.className = 'teach-strip';
  strip.setAttribute('role', 'group');
  strip.setAttribute('aria-label', `Examples of ${c.name}${c.examples.length > 60 ? ' (the newest 60)' : ''}`);
  // The newest first; past 60, a count (the strip stays light with hundreds).
  for (const ex of c.examples.slice(-60).reverse()) strip.append(thumb(c, ex));
  row.append(head, strip);
  // Images dropped on a class go to it.
  row.addEventListener('dragover', (e) => e.preventDefault());
  row.addEventListener('drop', (e) => {
    e.preventDefault();
    e.stopPropagation();
    const files = [...(e.dataTransfer?.files ?? [])];
    const images = files.filter((f) => f.type.startsWith('image/'));
    if (images.length) addImageFiles(c, images);
    else if (files.length) loadFiles(files);
  });
  return row;
}

function thumb(c, ex) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'teach-thumb';
  b.title = 'Remove this example (click, Delete or Backspace)';
  b.setAttribute('aria-label', `Example ${ex.id} of ${c.name}: press to remove`);
  const img = document.createElement('img');
  img.alt = '';
  img.src = ex.url;
  b.append(img);
  b.addEventListener('click', () => removeExample(c, ex));
  b.addEventListener('keydown', (e) => {
    if (e.key === 'Delete' || e.key === 'Backspace') removeExample(c, ex);
  });
  return b;
}

function removeExample(c, ex) {
  c.examples = c.examples.filter((x) => x !== ex);
  render();
}

// ------------------------------------------------------------------ recording

/** The frame the page classifies now: the webcam's video, or the image. */
function currentFrame() {
  const src = state.source;
  if (src?.kind === 'camera') {
    const v = document.querySelector('#video');
    return v.readyState >= 2 && v.videoWidth > 0 ? { el: v, w: v.videoWidth, h: v.videoHeight } : null;
  }
  if (src?.kind === 'image') return { el: src.el, w: src.el.naturalWidth, h: src.el.naturalHeight };
  return null;
}

const shot = document.createElement('canvas'); // one for every recorded frame

/** The frame, scaled so its shorter side is EXAMPLE_SIDE (never up), as a JPEG data URL. */
function snapshot(f) {
  const s = Math.min(1, EXAMPLE_SIDE / Math.min(f.w, f.h));
  shot.width = Math.max(1, Math.round(f.w * s));
  shot.height = Math.max(1, Math.round(f.h * s));
  shot.getContext('2d').drawImage(f.el, 0, 0, shot.width, shot.height);
  return shot.toDataURL('image/jpeg', 0.9);
}

function addExample(c, url) {
  if (total() >= MAX_EXAMPLES) {
    stopRecording();
    fail(`The recordings are full (${MAX_EXAMPLES} examples): remove some, or download them and start again.`);
    return false;
  }
  c.examples.push({ id: nextId++, url });
  return true;
}

function startRecording(c, button) {
  if (teach.recording) return;
  if (!currentFrame()) {
    fail('Nothing to record: start the webcam, drop an image or pick a sample first.');
    return;
  }
  button.setAttribute('aria-pressed', 'true');
  button.classList.add('recording');
  const grab = () => {
    const f = currentFrame();
    if (!f || !teach.classes.includes(c)) return stopRecording();
    if (addExample(c, snapshot(f))) renderCounts();
  };
  grab();
  teach.recording = { cls: c, button, timer: setInterval(grab, RECORD_MS) };
}

function stopRecording() {
  const r = teach.recording;
  if (!r) return;
  clearInterval(r.timer);
  teach.recording = null;
  r.button.setAttribute('aria-pressed', 'false');
  r.button.classList.remove('recording');
  // The strips are redrawn once, not ten times a second.
  render();
  r.button.isConnected || el.classes.querySelector(`[data-id="${r.cls.id}"] .teach-record`)?.focus();
}

/** While recording: just the counts (rebuilding the rows would drop the pressed button). */
function renderCounts() {
  for (const c of teach.classes) {
    const n = el.classes.querySelector(`[data-id="${c.id}"] .teach-n`);
    if (n) n.textContent = `${c.examples.length} example${c.examples.length === 1 ? '' : 's'}`;
  }
  el.count.textContent = `${total()} of at most ${MAX_EXAMPLES} examples`;
}

async function addImageFiles(c, files) {
  for (const f of files) {
    if (!f.type.startsWith('image/')) {
      fail(`“${f.name}” is not an image.`);
      continue;
    }
    const url = URL.createObjectURL(f);
    try {
      const img = new Image();
      img.src = url;
      await img.decode();
      if (!addExample(c, snapshot({ el: img, w: img.naturalWidth, h: img.naturalHeight }))) break;
    } catch {
      fail(`Could not open “${f.name}” as an image.`);
    } finally {
      URL.revokeObjectURL(url);
    }
  }
  render();
}

// ------------------------------------------------------------------ training

/** Refuses what cannot train, by name: fewer than two classes, an empty one, two of the same name. */
function checkClasses() {
  if (teach.classes.length < 2) return 'Teach mode needs at least two classes: add another one.';
  const empty = teach.classes.find((c) => c.examples.length === 0);
  if (empty) return `Class “${empty.name}” has no examples: record some, add images, or remove the class.`;
  const names = teach.classes.map((c) => c.name);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice) return `Two classes are called “${twice}”: rename one.`;
  return null;
}

async function train() {
  if (teach.training) return;
  stopRecording();
  const m = state.model;
  if (!m) return fail('Load a model first.');
  const problem = checkClasses();
  if (problem) return fail(problem);
  clearError();
  const ctrl = new AbortController();
  teach.training = ctrl;
  render();
  const names = teach.classes.map((c) => c.name);
  const examples = teach.classes.flatMap((c, ci) => c.examples.map((ex) => ({ ex, ci })));
  const epochs = Math.max(1, Math.min(500, Math.round(Number(el.epochs.value) || 20)));
  const lr = Number(el.lr.value) > 0 ? Number(el.lr.value) : 0.001;
  const what = el.what.value;
  let trainer = null;
  const t0 = performance.now();
  try {
    // The weights before Teach mode touched this model: a run starts from them, not from the last run's.
    if (!teach.base || !teach.own.has(m)) teach.base = { bytes: await m.exportWeights(), description: m.info.description };
    trainer = await m.trainer({ classes: names, weights: teach.base.bytes, train: what, learningRate: lr, augment: el.augment.checked, backend: el.backend.value, seed: 1 });
    progress(0, examples.length, 'Preparing the examples');
    const img = new Image();
    for (let i = 0; i < examples.length; i++) {
      if (ctrl.signal.aborted) throw new DOMException('stopped', 'AbortError');
      img.src = examples[i].ex.url;
      await img.decode();
      await trainer.add(img, examples[i].ci);
      if (i % 8 === 7) progress(i + 1, examples.length, 'Preparing the examples');
    }
    teach.history = [];
    teach.gradSteps = [];
    teach.lastFlow = null;
    teach.blockNames = [];
    const validationSplit = examples.length >= 10 ? 0.2 : 0;
    let steps = 0;
    await trainer.fit({
      epochs,
      batchSize: 16,
      validationSplit,
      signal: ctrl.signal,
      onStep: (s) => {
        steps = s.steps;
        progress(s.step, s.steps, `Training on ${trainer.backend === 'webgpu' ? 'the GPU' : 'the CPU'}: loss ${s.loss.toFixed(3)}`);
        const norms = trainer.gradientNorms();
        teach.blockNames = norms.map((n) => n.name);
        teach.gradSteps.push(norms.map((n) => n.input));
        if (teach.gradSteps.length > 400) teach.gradSteps.shift();
        drawGrads(norms);
        showGradients(norms);
      },
      onEpoch: (e) => {
        teach.history.push(e);
        drawCurves();
      },
    });
    teach.validation = trainer.validation();
    teach.validationExamples = examples;
    teach.trained = { bytes: await m.exportWeights(), names };
    teach.own.add(m);
    teach.runs += 1;
    drawConfusion();
    const last = teach.history.at(-1);
    const secs = ((performance.now() - t0) / 1000).toFixed(1);
    const val = last.valAccuracy === null ? '' : `, held-out accuracy ${(last.valAccuracy * 100).toFixed(0)}%`;
    say(`Trained ${what === 'head' ? 'the head' : what === 'all' ? 'the whole network' : 'the last stage'} on ${examples.length} examples in ${secs} s (${steps} steps): training accuracy ${(last.accuracy * 100).toFixed(0)}%${val}. The model now answers with your classes.`);
    setStatus(`Classifying with your ${names.length} classes.`);
    el.useOriginal.disabled = false;
    el.useTrained.disabled = true;
    el.saveModel.disabled = false;
    kick({ classify: true, full: true });
  } catch (e) {
    if (e?.name === 'AbortError') say('Training stopped: the model keeps the weights it had.');
    else fail(`Training failed: ${messageOf(e)}`);
  } finally {
    trainer?.dispose();
    teach.training = null;
    el.progress.hidden = true;
    render();
  }
}

function progress(done, of, text) {
  el.progress.hidden = false;
  el.progress.max = Math.max(1, of);
  el.progress.value = done;
  el.progressText.textContent = `${text} (${done}/${of})`;
}

// ------------------------------------------------------------------ charts

function canvasCtx(c) {
  const w = c.clientWidth || 420;
  const h = c.clientHeight || 160;
  const ctx = chartContext(c, w, h);
  ctx.font = '11px system-ui, sans-serif';
  return { ctx, w, h };
}

/** Loss (left scale) and training / held-out accuracy (right, 0–100%) per epoch. */
function drawCurves() {
  const { ctx, w, h } = canvasCtx(el.curves);
  const hs = teach.history;
  const pad = { l: 36, r: 36, t: 10, b: 20 };
  const pw = w - pad.l - pad.r;
  const ph = h - pad.t - pad.b;
  ctx.strokeStyle = '#8884';
  ctx.strokeRect(pad.l, pad.t, pw, ph);
  if (!hs.length) return;
  const maxLoss = Math.max(...hs.map((e) => e.loss), 1e-6);
  const x = (i) => pad.l + (hs.length === 1 ? pw / 2 : (i / (hs.length - 1)) * pw);
  const line = (vals, y, color) => {
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    vals.forEach((v, i) => (i ? ctx.lineTo(x(i), y(v)) : ctx.moveTo(x(i), y(v))));
    ctx.stroke();
  };
  line(hs.map((e) => e.loss), (v) => pad.t + ph * (1 - v / maxLoss), '#e4572e');
  line(hs.map((e) => e.accuracy), (v) => pad.t + ph * (1 - v), '#17bebb');
  if (hs[0].valAccuracy !== null) line(hs.map((e) => e.valAccuracy), (v) => pad.t + ph * (1 - v), '#7a5cff');
  ctx.fillStyle = '#888';
  ctx.fillText(maxLoss.toFixed(2), 2, pad.t + 8);
  ctx.fillText('0', 2, pad.t + ph);
  ctx.fillText('100%', w - pad.r + 4, pad.t + 8);
  ctx.fillText(`epoch ${hs.length}`, w - pad.r - 50, h - 4);
  const legend = [['loss', '#e4572e'], ['train acc.', '#17bebb'], ...(hs[0].valAccuracy !== null ? [['held-out acc.', '#7a5cff']] : [])];
  let lx = pad.l;
  for (const [t, c] of legend) {
    ctx.fillStyle = c;
    ctx.fillText(t, lx, h - 4);
    lx += ctx.measureText(t).width + 12;
  }
  const e = hs.at(-1);
  el.curves.setAttribute('aria-label', `Training curves: epoch ${e.epoch}, loss ${e.loss.toFixed(3)}, training accuracy ${(e.accuracy * 100).toFixed(0)}%${e.valAccuracy === null ? '' : `, held-out accuracy ${(e.valAccuracy * 100).toFixed(0)}%`}`);
}

/**
 * The gradient flow: one row per block, one column per step, the colour
 * ‖∂L/∂x‖ at the block's input against the largest of that step (log
 * scale, 1/1000 dark to 1 bright): how much of the gradient arrives at each
 * depth, whatever the loss is doing. Grey where the gradient does not reach
 * (the blocks that do not train) or is zero.
 */
function drawGrads(norms) {
  const { ctx, w, h } = canvasCtx(el.grads);
  const rows = teach.blockNames.length;
  const steps = teach.gradSteps;
  if (!rows || !steps.length) return;
  const label = 80;
  const rh = h / rows;
  const cw = (w - label) / steps.length;
  for (let r = 0; r < rows; r++) {
    ctx.fillStyle = '#888';
    ctx.fillText(teach.blockNames[r], 2, r * rh + rh / 2 + 4);
  }
  for (let s = 0; s < steps.length; s++) {
    const top = Math.max(0, ...steps[s].filter((v) => v !== null));
    for (let r = 0; r < rows; r++) {
      const v = steps[s][r];
      if (v === null || !(v > 0) || !(top > 0)) ctx.fillStyle = '#8882';
      else {
        const [R, G, B] = viridis(1 + Math.max(-3, Math.log10(v / top)) / 3);
        ctx.fillStyle = `rgb(${R},${G},${B})`;
      }
      ctx.fillRect(label + s * cw, r * rh, Math.ceil(cw), Math.ceil(rh));
    }
  }
  const reached = norms.filter((n) => n.input !== null);
  // Once every example is right with certainty the gradient is 0: show the last step that had one.
  if (reached.some((n) => n.input > 1e-12)) teach.lastFlow = { step: steps.length, reached };
  const shown = teach.lastFlow ?? { step: steps.length, reached };
  const when = shown.step === steps.length ? 'Last step' : `Step ${shown.step} (the gradient has been 0 since: every example is right with full confidence)`;
  el.gradsText.textContent = reached.length
    ? `${when}, ‖∂L/∂x‖ at each block's input: ${shown.reached.map((n) => `${n.name} ${n.input.toExponential(1)}`).join(', ')}. Colour: against the step's largest, from 1/1000 (dark) to 1 (bright).`
    : 'Training the head alone: the gradient stops at the dense layer (train the last stage or the whole network to see it flow through the blocks).';
}

/** The confusion matrix of the held-out examples; a cell shows its examples. */
function drawConfusion() {
  const names = teach.trained?.names ?? [];
  const v = teach.validation;
  el.cell.replaceChildren();
  if (!v.length) {
    el.confusion.replaceChildren(Object.assign(document.createElement('p'), { className: 'muted', textContent: 'Fewer than 10 examples: none were held out, so there is no confusion matrix.' }));
    return;
  }
  const table = document.createElement('table');
  table.className = 'confusion';
  const cap = document.createElement('caption');
  cap.textContent = `Held-out examples (${v.length}): rows are the true class, columns the predicted one. Press a cell to see its examples.`;
  table.append(cap);
  const head = document.createElement('tr');
  head.append(document.createElement('th'));
  for (const n of names) head.append(Object.assign(document.createElement('th'), { scope: 'col', textContent: n }));
  table.append(head);
  names.forEach((n, y) => {
    const tr = document.createElement('tr');
    tr.append(Object.assign(document.createElement('th'), { scope: 'row', textContent: n }));
    names.forEach((p, x) => {
      const items = v.filter((r) => r.label === y && r.predicted === x);
      const td = document.createElement('td');
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = String(items.length);
      b.className = y === x ? 'hit' : items.length ? 'miss' : '';
      b.setAttribute('aria-label', `${items.length} ${n} example${items.length === 1 ? '' : 's'} predicted as ${p}`);
      b.addEventListener('click', () => showCell(items, n, p));
      td.append(b);
      tr.append(td);
    });
    table.append(tr);
  });
  el.confusion.replaceChildren(table);
}

function showCell(items, truth, predicted) {
  const h = document.createElement('p');
  h.textContent = items.length ? `${truth} predicted as ${predicted}:` : `No ${truth} example was predicted as ${predicted}.`;
  const strip = document.createElement('div');
  strip.className = 'teach-strip';
  for (const r of items) {
    const ex = teach.validationExamples[r.example]?.ex;
    if (!ex) continue;
    const img = document.createElement('img');
    img.src = ex.url;
    img.alt = `${truth} example predicted as ${predicted}`;
    img.className = 'teach-cell-img';
    strip.append(img);
  }
  el.cell.replaceChildren(h, strip);
}

// ------------------------------------------------------------------ keep and share

function download(bytes, name, type) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([bytes], { type }));
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

function recordingsJson() {
  return JSON.stringify({ format: FORMAT, version: 1, classes: teach.classes.map((c) => ({ name: c.name, examples: c.examples.map((e) => e.url) })) });
}

/** Replaces the classes with those of a recordings file; refuses anything else by name. */
function loadRecordings(text, name) {
  let d;
  try {
    d = JSON.parse(text);
  } catch {
    throw new Error(`“${name}” is not a recordings file (not JSON)`);
  }
  const ok = d && d.format === FORMAT && Array.isArray(d.classes) && d.classes.every((c) => typeof c?.name === 'string' && Array.isArray(c.examples) && c.examples.every((u) => typeof u === 'string' && u.startsWith('data:image/')));
  if (!ok) throw new Error(`“${name}” is not a Teach-mode recordings file`);
  const n = d.classes.reduce((s, c) => s + c.examples.length, 0);
  if (n > MAX_EXAMPLES) throw new Error(`“${name}” holds ${n} examples, more than the ${MAX_EXAMPLES} Teach mode keeps`);
  stopRecording();
  teach.classes = d.classes.map((c) => ({ id: nextId++, name: c.name, examples: c.examples.map((url) => ({ id: nextId++, url })) }));
  render();
  say(`Loaded ${n} examples in ${teach.classes.length} classes from “${name}”.`);
}

/** Recordings (.json) or weights (.safetensors), chosen or dropped. */
async function loadFiles(files) {
  for (const f of files) {
    try {
      if (/\.safetensors$/i.test(f.name)) {
        loadWeightsFile(f);
        say(`Loading the model “${f.name}”…`);
      } else if (/\.json$/i.test(f.name) || f.type === 'application/json') loadRecordings(await f.text(), f.name);
      else throw new Error(`“${f.name}” is neither Teach-mode recordings (.json) nor weights (.safetensors)`);
    } catch (e) {
      fail(messageOf(e));
    }
  }
}

async function useWeights(bytes, name) {
  await loadModel({ kind: 'file', file: new File([bytes], name) });
  if (state.model) teach.own.add(state.model);
}

// ------------------------------------------------------------------ wiring

el.addClass.addEventListener('click', () => {
  const c = addClass();
  el.classes.querySelector(`[data-id="${c.id}"] .teach-name`)?.focus();
});
el.train.addEventListener('click', () => train());
el.stop.addEventListener('click', () => teach.training?.abort());
el.saveModel.addEventListener('click', async () => {
  const bytes = teach.trained?.bytes;
  if (bytes) download(bytes, 'my-classes.safetensors', 'application/octet-stream');
});
el.saveData.addEventListener('click', () => {
  if (!total()) return fail('Nothing recorded yet.');
  download(recordingsJson(), 'teach-recordings.json', 'application/json');
});
el.loadFile.addEventListener('change', () => {
  loadFiles([...el.loadFile.files]);
  el.loadFile.value = '';
});
el.clear.addEventListener('click', () => {
  stopRecording();
  teach.classes = [];
  addClass('Class 1');
  addClass('Class 2');
  say('Cleared.');
});
el.useOriginal.addEventListener('click', async () => {
  if (!teach.base) return;
  el.useOriginal.disabled = true;
  await useWeights(teach.base.bytes, 'original.safetensors');
  el.useTrained.disabled = !teach.trained;
  say(`Back to ${teach.base.description}.`);
});
el.useTrained.addEventListener('click', async () => {
  if (!teach.trained) return;
  el.useTrained.disabled = true;
  await useWeights(teach.trained.bytes, 'my-classes.safetensors');
  el.useOriginal.disabled = false;
  say('Classifying with your classes again.');
});
el.card.addEventListener('dragover', (e) => e.preventDefault());
el.card.addEventListener('drop', (e) => {
  e.preventDefault();
  loadFiles([...(e.dataTransfer?.files ?? [])]);
});

addClass('Class 1');
addClass('Class 2');
drawCurves();
