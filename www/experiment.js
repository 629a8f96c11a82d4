// "Why residual?": the lesson as an experiment. A CIFAR-style ResNet and its
// plain twin (the same layers, no shortcuts), same seed and batches, trained
// side by side on handwritten digits in this tab (WebGPU or the CPU backend),
// with their loss and test accuracy, the gradient reaching every block
// (a blocks × steps heatmap per network) and ‖F(x)‖/‖x‖ of the residual blocks.
//
// The training runs in a dedicated worker (experiment-worker.js): a step of
// a deep network takes a second or more, and the page stays responsive.
// State for the tests: window.__experiment (`memory`: the worker's wasm memory after the last run).

import { chartContext } from './results.js';
import { teach } from './teach.js';
import { LUTS } from './colormaps.js';

const $ = (id) => document.getElementById(id);
const el = {
  data: $('exp-data'), depth: $('exp-depth'), bn: $('exp-bn'), init: $('exp-init'), zeroGamma: $('exp-zero-gamma'), lr: $('exp-lr'), epochs: $('exp-epochs'), backend: $('exp-backend'),
  run: $('exp-run'), stop: $('exp-stop'), progress: $('exp-progress'), text: $('exp-progress-text'), message: $('exp-message'),
  loss: $('exp-loss'), acc: $('exp-acc'), heatRes: $('exp-heat-res'), heatPlain: $('exp-heat-plain'), ratios: $('exp-ratios'), summary: $('exp-summary'),
};

const COLORS = { residual: '#e4572e', plain: '#3a86ff' };
const state = { running: false, runs: 0, steps: 0, blocks: [], history: { residual: [], plain: [] }, names: ['', ''], backend: null, error: null, seconds: 0, done: false, memory: 0, dataset: null };
window.__experiment = state;
let worker = null;

function options() {
  return {
    depth: Number(el.depth.value), batchnorm: el.bn.checked, init: el.init.value, zeroGamma: el.zeroGamma.checked,
    lr: Number(el.lr.value), epochs: Number(el.epochs.value), batchSize: 32, evalEvery: 5, backend: el.backend.value,
  };
}

/** The side Teach mode's recordings are scaled to (centre crop), RGB. */
const RECORDING_SIDE = 32;

/**
 * Teach mode's recordings as a dataset file (the format of
 * tools/make_digits.py): each example centre-cropped and scaled to 32×32
 * RGB; every fifth example of each class held out to test, the rest train
 * (a fixed split). Fails with a message where the recordings cannot make one.
 */
async function recordingsDataset() {
  const classes = teach.classes;
  if (classes.length < 2 || classes.some((c) => c.examples.length < 2)) {
    throw new Error('Teach mode needs at least two classes with two or more recordings each to make a dataset.');
  }
  const side = RECORDING_SIDE;
  const c = new OffscreenCanvas(side, side);
  const g = c.getContext('2d', { willReadFrequently: true });
  const train = [];
  const test = [];
  for (const [ci, cls] of classes.entries()) {
    for (const [i, ex] of cls.examples.entries()) {
      const img = new Image();
      img.src = ex.url;
      await img.decode();
      const s = Math.min(img.naturalWidth, img.naturalHeight);
      g.drawImage(img, (img.naturalWidth - s) / 2, (img.naturalHeight - s) / 2, s, s, 0, 0, side, side);
      const d = g.getImageData(0, 0, side, side).data;
      const px = new Uint8Array(3 * side * side);
      for (let k = 0; k < side * side; k++) for (let ch = 0; ch < 3; ch++) px[ch * side * side + k] = d[4 * k + ch];
      // Every fifth to test; a class of fewer than five holds out its last.
      const held = i % 5 === 4 || (cls.examples.length < 5 && i === cls.examples.length - 1);
      (held ? test : train).push([ci, px]);
    }
  }
  const all = [...train, ...test];
  const head = new DataView(new ArrayBuffer(40));
  new TextEncoder().encodeInto('RESNETDS', new Uint8Array(head.buffer));
  [1, all.length, side, side, 3, classes.length, train.length, 255].forEach((v, i) => head.setUint32(8 + 4 * i, v, true));
  const bytes = new Uint8Array(40 + all.length * (1 + 3 * side * side));
  bytes.set(new Uint8Array(head.buffer));
  all.forEach(([y], i) => (bytes[40 + i] = y));
  all.forEach(([, px], i) => bytes.set(px, 40 + all.length + i * px.length));
  return { bytes, train: train.length, test: test.length, classes: classes.length };
}

function say(text) {
  el.message.textContent = text;
}

/** The training worker, made at the first run and kept (its engine loads once). */
function trainingWorker() {
  worker ??= new Worker(new URL('./experiment-worker.js', import.meta.url), { type: 'module' });
  return worker;
}

/** Runs the experiment in the worker; resolves when it ends, is stopped or fails. */
function runInWorker(o, t0) {
  return new Promise((resolve) => {
    const w = trainingWorker();
    let last = 0;
    w.onmessage = ({ data }) => {
      if (data.started) {
        Object.assign(state, data.started);
        el.text.textContent = `training on ${data.started.backend === 'webgpu' ? 'WebGPU' : 'the CPU'}, on ${state.dataset}…`;
      } else if (data.step) {
        const [r, p] = data.step;
        state.history.residual.push(r);
        state.history.plain.push(p);
        el.progress.value = r.step / state.steps;
        el.text.textContent = `step ${r.step} of ${state.steps} on ${state.backend === 'webgpu' ? 'WebGPU' : 'the CPU'} · ${((performance.now() - t0) / 1000).toFixed(0)} s`;
        // Redraw at most 5 times a second: drawing is not free on a slow machine.
        if (performance.now() - last > 200 || r.step === state.steps) {
          last = performance.now();
          drawAll();
        }
      } else if (data.done) {
        state.memory = data.done.memory;
        state.done = !data.done.stopped;
        resolve();
        say(data.done.stopped ? `Stopped after ${state.history.residual.length} steps. ${summaryLine()}` : summaryLine());
      } else if (data.error) {
        state.error = data.error;
        resolve();
        say(`The experiment failed: ${data.error}`);
      }
    };
    w.onerror = (e) => {
      state.error = e.message || 'the training worker failed to start';
      say(`The experiment failed: ${state.error}`);
      worker = null;
      resolve();
    };
    w.postMessage({ run: o });
  });
}

async function run() {
  if (state.running) return;
  const o = options();
  if (el.data.value === 'recordings') {
    try {
      const d = await recordingsDataset();
      o.dataset = d.bytes;
      // A batch no larger than the training split.
      o.batchSize = Math.max(2, Math.min(o.batchSize, d.train));
      state.dataset = `your recordings: ${d.classes} classes, ${d.train} to train, ${d.test} to test, at ${RECORDING_SIDE}×${RECORDING_SIDE}`;
    } catch (e) {
      say(e.message);
      return;
    }
  } else {
    state.dataset = 'the digits';
  }
  state.running = true;
  state.done = false;
  state.error = null;
  state.history = { residual: [], plain: [] };
  state.names = [`ResNet-${o.depth}`, `plain-${o.depth}`];
  el.run.disabled = true;
  el.stop.disabled = false;
  el.progress.hidden = false;
  el.progress.value = 0;
  el.text.textContent = 'building both networks…';
  say('');
  drawAll();
  const t0 = performance.now();
  try {
    await runInWorker(o, t0);
  } finally {
    state.seconds = (performance.now() - t0) / 1000;
    state.running = false;
    state.runs += 1;
    el.run.disabled = false;
    el.stop.disabled = true;
    drawAll();
  }
}

function summaryLine() {
  const [r, p] = [state.history.residual, state.history.plain];
  if (!r.length) return '';
  const acc = (h) => h.findLast((s) => s.testAccuracy !== null)?.testAccuracy;
  const pct = (v) => (v === undefined ? '–' : `${(100 * v).toFixed(1)}%`);
  // A loss that overflowed comes as null (JSON has no NaN): the network diverged.
  const loss = (h) => (Number.isFinite(h.at(-1).loss) ? h.at(-1).loss.toFixed(3) : 'diverged');
  return `${state.names[0]}: loss ${loss(r)}, test ${pct(acc(r))}; ${state.names[1]}: loss ${loss(p)}, test ${pct(acc(p))}.`;
}

function canvasCtx(c, height) {
  const w = c.clientWidth || 420;
  const ctx = chartContext(c, w, height);
  ctx.font = '11px system-ui, sans-serif';
  return { ctx, w, h: height };
}

/** Lines of `series` ([{ values: [[x, y]], color }]) over steps 1…steps, y from 0 to `top`. */
function lines(c, series, top, yLabel, fmt) {
  const { ctx, w, h } = canvasCtx(c, 150);
  const pad = { l: 40, r: 8, t: 8, b: 18 };
  const pw = w - pad.l - pad.r;
  const ph = h - pad.t - pad.b;
  ctx.strokeStyle = '#8884';
  ctx.strokeRect(pad.l, pad.t, pw, ph);
  ctx.fillStyle = '#888';
  ctx.fillText(fmt(top), 2, pad.t + 8);
  ctx.fillText(fmt(0), 2, pad.t + ph);
  ctx.fillText(yLabel, pad.l + 4, h - 4);
  const steps = Math.max(state.steps, 1);
  ctx.fillText(`step ${steps}`, w - pad.r - 50, h - 4);
  for (const { values, color, dots } of series) {
    ctx.strokeStyle = ctx.fillStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    values.forEach(([x, y], i) => {
      const X = pad.l + (x / steps) * pw;
      const Y = pad.t + ph * (1 - Math.min(y, top) / top);
      if (i) ctx.lineTo(X, Y);
      else ctx.moveTo(X, Y);
      if (dots) ctx.fillRect(X - 2, Y - 2, 4, 4);
    });
    ctx.stroke();
  }
}

function drawCurves() {
  const { residual: r, plain: p } = state.history;
  const top = Math.max(0.5, ...[...r, ...p].map((s) => s.loss).filter(Number.isFinite));
  const pts = (h) => h.filter((s) => Number.isFinite(s.loss)).map((s) => [s.step, s.loss]);
  lines(el.loss, [{ values: pts(r), color: COLORS.residual }, { values: pts(p), color: COLORS.plain }], top, 'training loss', (v) => v.toFixed(2));
  const acc = (h) => h.filter((s) => s.testAccuracy !== null).map((s) => [s.step, s.testAccuracy]);
  lines(el.acc, [{ values: acc(r), color: COLORS.residual, dots: true }, { values: acc(p), color: COLORS.plain, dots: true }], 1, 'test accuracy', (v) => `${Math.round(v * 100)}%`);
  el.loss.setAttribute('aria-label', `Training loss per step: ${summaryLine() || 'not run yet'}`);
}

/**
 * Blocks × steps, the colour log₁₀ ‖∂L/∂x‖ at the block's input on one scale
 * for both networks (from the smallest to the largest value either has), so
 * a plain network whose first blocks get a vanishing gradient shows dark
 * rows where the residual one stays bright.
 */
function drawHeat(c, history, range, title) {
  const rows = state.blocks.length;
  const { ctx, w, h } = canvasCtx(c, Math.max(90, Math.min(220, rows * 8 + 20)));
  const label = 62;
  ctx.fillStyle = '#888';
  ctx.fillText(title, label, 10);
  if (!rows || !history.length) return;
  const top = 14;
  const rh = (h - top) / rows;
  const steps = Math.max(state.steps, history.length);
  const cw = (w - label) / steps;
  const lut = LUTS.viridis;
  const [lo, hi] = range;
  for (let r = 0; r < rows; r++) {
    if (rows <= 12 || r % Math.ceil(rows / 12) === 0) {
      ctx.fillStyle = '#888';
      ctx.fillText(state.blocks[r], 2, top + r * rh + rh / 2 + 4);
    }
  }
  history.forEach((s, i) => {
    for (let r = 0; r < rows; r++) {
      const v = s.gradNorms[r];
      if (v === null || !(v > 0)) ctx.fillStyle = '#8882';
      else {
        const t = hi > lo ? (Math.log10(v) - lo) / (hi - lo) : 1;
        const k = Math.max(0, Math.min(255, Math.round(t * 255))) * 3;
        ctx.fillStyle = `rgb(${lut[k]},${lut[k + 1]},${lut[k + 2]})`;
      }
      ctx.fillRect(label + i * cw, top + r * rh, Math.ceil(cw), Math.ceil(rh));
    }
  });
}

function heatRange() {
  const all = [...state.history.residual, ...state.history.plain].flatMap((s) => s.gradNorms).filter((v) => v > 0);
  if (!all.length) return [0, 1];
  return [Math.log10(Math.min(...all)), Math.log10(Math.max(...all))];
}

/** ‖F(x)‖/‖x‖ of each residual block over the steps: one line per block, lighter with depth. */
function drawRatios() {
  const r = state.history.residual;
  const rows = state.blocks.length;
  const series = [];
  let top = 0.5;
  for (let b = 0; b < rows; b++) {
    const values = r.filter((s) => s.ratios[b] !== null && Number.isFinite(s.ratios[b])).map((s) => [s.step, s.ratios[b]]);
    top = Math.max(top, ...values.map((v) => v[1]));
    const k = Math.round((b / Math.max(1, rows - 1)) * 200 + 40) * 3;
    series.push({ values, color: `rgb(${LUTS.inferno[k]},${LUTS.inferno[k + 1]},${LUTS.inferno[k + 2]})` });
  }
  lines(el.ratios, series, Math.min(top, 5), '‖F(x)‖/‖x‖ per residual block (dark: first, light: last)', (v) => v.toFixed(2));
}

function drawSummary() {
  const { residual: r, plain: p } = state.history;
  if (!r.length) {
    el.summary.textContent = '';
    return;
  }
  const row = (name, h) => {
    const acc = h.findLast((s) => s.testAccuracy !== null)?.testAccuracy;
    const tail = h.slice(-Math.max(1, Math.floor(h.length / 10)));
    const mean = tail.reduce((a, s) => a + s.loss, 0) / tail.length;
    const loss = tail.every((s) => Number.isFinite(s.loss)) ? mean.toFixed(3) : 'diverged';
    const g = h[0].gradNorms[0];
    return `<tr><th scope="row">${name}</th><td>${loss}</td><td>${acc === undefined ? '–' : `${(acc * 100).toFixed(1)}%`}</td><td>${g === null ? '–' : g.toExponential(2)}</td></tr>`;
  };
  el.summary.innerHTML = `<table class="exp-table"><thead><tr><th></th><th>training loss (last tenth)</th><th>test accuracy</th><th>‖∂L/∂x‖ at the first block, step 1</th></tr></thead><tbody>${row(state.names[0], r)}${row(state.names[1], p)}</tbody></table>`;
}

function drawAll() {
  drawCurves();
  const range = heatRange();
  drawHeat(el.heatRes, state.history.residual, range, `${state.names[0] || 'ResNet'}: ‖∂L/∂x‖ at each block's input (rows) per step (columns), log scale, shared`);
  drawHeat(el.heatPlain, state.history.plain, range, `${state.names[1] || 'plain'}: the same, no shortcuts`);
  drawRatios();
  drawSummary();
}

el.run.addEventListener('click', run);
el.stop.addEventListener('click', () => worker?.postMessage({ stop: true }));
window.addEventListener('resize', drawAll);
drawAll();
