// What one frame gave: the top 5, frames per second and latency, GPU time per
// stage, and the ‖F(x)‖/‖x‖ chart of every residual block.

import { labelOf, state } from './state.js';
import { panelOf, showRatios } from './panels.js';

const $ = (sel) => document.querySelector(sel);
const el = {
  top5: $('#top5'),
  fps: $('#fps'),
  latency: $('#latency'),
  frameCount: $('#frame-count'),
  stageTimes: $('#stage-times'),
  timingSource: $('#timing-source'),
  residualChart: $('#residual-chart'),
};

const fpsTimes = []; // when the last ~2 s of frames finished (live)
let lastResiduals = [];

export function renderTop5(res) {
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

/** Counts a finished frame; frames per second are shown live only. */
export function renderMetrics(res, live) {
  const t = performance.now();
  fpsTimes.push(t);
  while (fpsTimes.length > 2 && t - fpsTimes[0] > 2000) fpsTimes.shift();
  el.latency.textContent = `${res.ms.toFixed(res.ms < 10 ? 1 : 0)} ms`;
  el.frameCount.textContent = String(state.frames);
  if (live && fpsTimes.length > 1) {
    const span = (fpsTimes[fpsTimes.length - 1] - fpsTimes[0]) / 1000;
    el.fps.textContent = span > 0 ? ((fpsTimes.length - 1) / span).toFixed(1) : '–';
  } else if (!live) el.fps.textContent = '–';
}

/** The webcam starts or stops: frames per second count afresh. */
export function resetFps() {
  fpsTimes.length = 0;
  el.fps.textContent = '–';
}

export function renderTimings(t) {
  el.timingSource.textContent = { gpu: '(GPU timestamps)', cpu: '(CPU clock)' }[t.source] ?? '(wall clock)';
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

/** `residuals()` of the last frame: under each panel and in the chart. */
export function renderResiduals(residuals) {
  lastResiduals = residuals;
  showRatios(residuals);
  drawResidualChart();
}

/** A new model or input size: no ratios until its first frame. */
export function clearResiduals() {
  lastResiduals = [];
  drawResidualChart();
}

const CHART_H = 180; // CSS px
const PAD_L = 34;
const PAD_B = 44;
const PAD_T = 10;

/** A chart canvas `cssW`×`cssH` CSS pixels at the screen's pixel ratio, cleared, drawn in CSS pixels. */
export function chartContext(c, cssW, cssH) {
  const dpr = window.devicePixelRatio || 1;
  if (c.width !== Math.round(cssW * dpr) || c.height !== Math.round(cssH * dpr)) {
    c.width = Math.round(cssW * dpr);
    c.height = Math.round(cssH * dpr);
  }
  const ctx = c.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, cssW, cssH);
  return ctx;
}

export function drawResidualChart() {
  const cssW = el.residualChart.clientWidth || 640;
  const ctx = chartContext(el.residualChart, cssW, CHART_H);
  const rs = lastResiduals;
  const plotH = CHART_H - PAD_B - PAD_T;
  const max = Math.max(1, ...rs.map((r) => r.ratio));
  ctx.font = '11px system-ui, sans-serif';
  ctx.strokeStyle = 'rgba(255,255,255,0.15)';
  ctx.fillStyle = '#9aa3b5';
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (const v of [0, 0.5, 1, max > 1.5 ? Math.floor(max) : null].filter((v) => v !== null)) {
    const y = PAD_T + plotH * (1 - v / max);
    ctx.beginPath();
    ctx.moveTo(PAD_L, y);
    ctx.lineTo(cssW, y);
    ctx.stroke();
    ctx.fillText(v.toFixed(1), PAD_L - 4, y);
  }
  if (!rs.length) {
    ctx.textAlign = 'center';
    ctx.fillText('Classify something to see the residual ratios.', (cssW + PAD_L) / 2, PAD_T + plotH / 2);
    return;
  }
  drawBars(ctx, rs, cssW, plotH, max);
  drawLegend(ctx, cssW);
}

/** One bar per residual block (0 and a red × when skipped), named below when there is room. */
function drawBars(ctx, rs, cssW, plotH, max) {
  const slot = (cssW - PAD_L) / rs.length;
  const bw = Math.max(2, Math.min(28, slot * 0.7));
  rs.forEach((r, i) => {
    const p = panelOf(r.name);
    const skipped = r.skipped;
    const x = PAD_L + slot * i + (slot - bw) / 2;
    const hgt = skipped ? 0 : (plotH * Math.min(r.ratio, max)) / max;
    ctx.fillStyle = p?.kind === 'convolutional' ? '#e0a040' : '#4cc0a0';
    ctx.fillRect(x, PAD_T + plotH - hgt, bw, hgt);
    if (skipped) {
      ctx.fillStyle = '#ff6b6b';
      ctx.fillText('×', x + bw / 2 + 3, PAD_T + plotH - 6);
    }
    if (slot >= 14) {
      ctx.save();
      ctx.translate(x + bw / 2, PAD_T + plotH + 6);
      ctx.rotate(-Math.PI / 4);
      ctx.fillStyle = '#9aa3b5';
      ctx.textAlign = 'right';
      ctx.fillText(r.name, 0, 0);
      ctx.restore();
    }
  });
}

function drawLegend(ctx, cssW) {
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
