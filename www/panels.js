// The activation panels: one per block, grouped by stage. Each shows the
// channels with the largest mean activation (each map scaled to its own
// range); identity blocks have a skip switch, residual blocks their
// ‖F(x)‖/‖x‖. A click on a map (or Enter / Space on its tile, for the
// keyboard) selects it to lie over the frame (view.js draws that).

import { page, state } from './state.js';
import { currentLut, paintMap } from './colormaps.js';
import { messageOf, setStatus, showError } from './status.js';

const TILE = 48; // CSS px per feature map
const GAP = 3;
const KIND_LABEL = { stem: 'stem', convolutional: 'convolutional', identity: 'identity', head: 'head' };

const $ = (sel) => document.querySelector(sel);
const el = { blocks: $('#blocks'), channels: $('#channels-select'), colormap: $('#colormap-select') };

// The view and the frame loop import this module; app.js hands their calls in here.
const up = {
  overlayChanged: () => {}, // the selection or its data changed: redraw the overlay
  kick: (request) => {}, // ask the frame loop for a classify or a panel refresh
};
export const connectPanels = (hooks) => Object.assign(up, hooks);

/**
 * name -> { name, kind, shape: [C, H, W], root, canvas, tiles, toggle, ratioEl, cols, rows, tw, th,
 * last: { chans, shown, H, W, data } (head: { vector }) | null }
 */
let panels = new Map();
let rr = 0; // round-robin position over the panels, live
let selected = null; // { block, channel } shown over the frame

export const panelOf = (name) => panels.get(name);
export const panelNames = () => [...panels.keys()];

/** Live: the next `count` panels round-robin, plus the selected one (it lies over the frame). */
export function nextPanels(count) {
  const names = panelNames();
  const todo = [];
  for (let i = 0; i < Math.min(count, names.length); i++) todo.push(names[(rr + i) % names.length]);
  rr = (rr + count) % Math.max(1, names.length);
  if (selected && !todo.includes(selected.block)) todo.push(selected.block);
  return todo;
}

// ------------------------------------------------------------------ building

/** One panel per block of `m` (after a load or a re-plan): nothing drawn, nothing selected. */
export function buildPanels(m) {
  panels = new Map();
  rr = 0;
  selected = null;
  const stages = new Map();
  for (const b of m.blocks()) {
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
    for (const b of bs) row.append(makePanel(b, m).root);
    g.append(title, row);
    groups.push(g);
  }
  el.blocks.replaceChildren(...groups);
}

function makePanel(b, m) {
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
  const p = { name: b.name, kind: b.kind, shape: b.shape, root, canvas, tiles: null, last: null, toggle: null, ratioEl: null, cols: 4 };
  root.append(head);
  if (b.kind === 'head') {
    root.append(canvas);
    canvas.classList.add('strip');
    canvas.title = 'The pooled feature vector (one bar per channel) that the dense layer turns into class scores';
    const note = document.createElement('p');
    note.className = 'bp-note';
    note.textContent = `${C} channel averages → dense → ${m.info.classes} logits`;
    root.append(note);
  } else {
    canvas.title = 'Click a feature map (or Tab to its panel, arrow to it and press Enter) to lay it over the input';
    canvas.addEventListener('click', (e) => onTileClick(p, e));
    // The maps are pixels on one canvas: a focusable tile over each one lets
    // the keyboard pick it. The tiles let the mouse through to the canvas.
    p.tiles = document.createElement('div');
    p.tiles.className = 'bp-tiles';
    // One Tab stop per panel (a roving tabindex): the arrow keys move between
    // its maps, so Tab still reaches the skip switches past a hundred maps.
    p.focusIndex = 0;
    p.tiles.addEventListener('keydown', (e) => {
      if (!e.target.dataset.index) return;
      const i = Number(e.target.dataset.index);
      const n = p.tiles.children.length;
      const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: p.cols, ArrowUp: -p.cols, Home: -n, End: n }[e.key];
      if (step !== undefined) {
        e.preventDefault();
        moveFocus(p, Math.max(0, Math.min(n - 1, i + step)));
        return;
      }
      if (e.key !== 'Enter' && e.key !== ' ') return;
      e.preventDefault(); // Space would scroll the page
      if (!e.repeat) selectTile(p, i);
    });
    p.tiles.addEventListener('focusin', (e) => {
      if (e.target.dataset.index) p.focusIndex = Number(e.target.dataset.index);
    });
    // A screen reader's "click" on a tile.
    p.tiles.addEventListener('click', (e) => {
      if (e.target.dataset.index) selectTile(p, Number(e.target.dataset.index));
    });
    const maps = document.createElement('div');
    maps.className = 'bp-maps-wrap';
    maps.append(canvas, p.tiles);
    root.append(maps);
  }
  if (b.kind === 'identity' || b.kind === 'convolutional') root.append(residualFooter(p, m, kind));
  else if (b.kind === 'stem') {
    const n = document.createElement('p');
    n.className = 'bp-note';
    // ImageNet ResNets shrink the input 4× in the stem; CIFAR-style networks (the experiment's) keep it.
    n.textContent = b.shape[1] === m.info.inputSize[0] ? '3×3 conv · BN · ReLU (no pool)' : '7×7/2 conv · BN · ReLU · 3×3/2 max pool';
    root.append(n);
  }
  // Teach mode's gradient at this block, step by step while it trains.
  p.gradEl = document.createElement('p');
  p.gradEl.className = 'bp-grad';
  p.gradEl.hidden = true;
  root.append(p.gradEl);
  sizePanelCanvas(p);
  panels.set(b.name, p);
  return p;
}

/**
 * Teach mode's last step in each panel: ‖∂L/∂x‖ at the block's input and
 * ‖∂L/∂W‖ of its tensors, with a bar for the input's on a log scale
 * (1e-6 … 1). `norms`: `[{ name, weights, input }]`, or null to hide them.
 */
export function showGradients(norms) {
  for (const p of panels.values()) p.gradEl.hidden = true;
  for (const n of norms ?? []) {
    const p = panels.get(n.name);
    if (!p) continue;
    const parts = [];
    if (n.input !== null) parts.push(`∂L/∂x ${n.input.toExponential(1)}`);
    if (n.weights !== null) parts.push(`‖∂L/∂W‖ ${n.weights.toExponential(1)}`);
    if (!parts.length) continue;
    const level = n.input > 0 ? Math.max(0, Math.min(1, (Math.log10(n.input) + 6) / 6)) : 0;
    p.gradEl.style.setProperty('--g', String(level));
    p.gradEl.textContent = `training: ${parts.join(' · ')}`;
    p.gradEl.hidden = false;
  }
}

/** A residual block's footer: its ‖F(x)‖/‖x‖, and for an identity block the skip switch. */
function residualFooter(p, m, kindEl) {
  const foot = document.createElement('footer');
  const ratio = document.createElement('span');
  ratio.className = 'ratio';
  ratio.dataset.block = p.name;
  ratio.innerHTML = '<span class="ratio-label">‖F(x)‖/‖x‖</span><span class="ratio-bar"><span class="ratio-fill"></span></span><span class="ratio-num">–</span>';
  p.ratioEl = ratio;
  foot.append(ratio);
  if (p.kind !== 'identity') {
    kindEl.title = 'Convolutional block: the shortcut is a strided 1×1 convolution (with batchnorm), to change the shape';
    return foot;
  }
  const lab = document.createElement('label');
  lab.className = 'skip';
  lab.title = 'Unticked: the block is skipped, its output is its input';
  const t = document.createElement('input');
  t.type = 'checkbox';
  t.className = 'skip-toggle';
  t.dataset.block = p.name;
  // The label's text is only "on": say which block it switches.
  t.setAttribute('aria-label', `Run block ${p.name} (untick to skip it: its output becomes its input)`);
  try {
    t.checked = m.blockEnabled(p.name);
  } catch {
    t.checked = true;
  }
  // Rebuilt after a re-plan: a block still skipped keeps its dimmed look.
  p.root.classList.toggle('skipped', !t.checked);
  t.addEventListener('change', () => onSkipToggle(p, t));
  lab.append(t, document.createTextNode(' on'));
  foot.append(lab);
  p.toggle = t;
  return foot;
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

// ------------------------------------------------------------------ reading and drawing

/** Reads a block's strongest channels (the head: its pooled vector) of the last frame, and draws them. */
export async function refreshPanel(m, name) {
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
  const chans = means && means.length ? page.lib.topIndices(means, n) : Array.from({ length: n }, (_, i) => i);
  const shown = chans.length;
  // The selected channel is read too (not drawn here) so that the overlay keeps it.
  if (selected?.block === name && !chans.includes(selected.channel)) chans.push(selected.channel);
  const a = await m.activation(name, { channels: chans });
  if (m !== state.model || panels.get(name) !== p) return;
  const [, H, W] = a.shape;
  p.last = { chans, shown, H, W, data: a.data };
  redrawPanel(p);
  if (selected?.block === name) up.overlayChanged();
}

/** ‖F(x)‖/‖x‖ under each residual block, from `residuals()` of the last frame. */
export function showRatios(residuals) {
  const byName = new Map(residuals.map((r) => [r.name, r]));
  for (const p of panels.values()) {
    if (!p.ratioEl) continue;
    const r = byName.get(p.name);
    if (!r) {
      p.ratioEl.querySelector('.ratio-num').textContent = '–';
      continue;
    }
    // As the frame ran (the box may have been ticked since).
    const skipped = r.skipped;
    p.ratioEl.querySelector('.ratio-num').textContent = skipped ? 'skipped' : r.ratio.toFixed(3);
    p.ratioEl.querySelector('.ratio-fill').style.width = `${skipped ? 0 : Math.min(100, r.ratio * 100)}%`;
    p.ratioEl.title = `‖F(x)‖ = ${r.main.toFixed(2)}, ‖x‖ = ${r.shortcut.toFixed(2)}`;
  }
}

function redrawPanel(p) {
  const ctx = p.canvas.getContext('2d');
  const dpr = window.devicePixelRatio || 1;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  const cssW = p.canvas.width / dpr;
  const cssH = p.canvas.height / dpr;
  ctx.clearRect(0, 0, cssW, cssH);
  syncTiles(p);
  if (!p.last) return;
  if (p.kind === 'head') {
    drawVector(ctx, p.last.vector, cssW, cssH);
    return;
  }
  const { shown, H, W, data } = p.last;
  const table = currentLut();
  ctx.imageSmoothingEnabled = false;
  for (let i = 0; i < shown; i++) {
    const c = paintMap(data, i * H * W, H, W, table);
    const x = (i % p.cols) * (p.tw + GAP);
    const y = Math.floor(i / p.cols) * (p.th + GAP);
    ctx.drawImage(c, x, y, p.tw, p.th);
  }
  drawPanelSelection(p);
}

/**
 * One focusable tile over each drawn map, named for its block and channel
 * (they change as the strongest channels do); kept, not rebuilt, so that
 * a focused tile keeps the focus across redraws.
 */
function syncTiles(p) {
  if (!p.tiles) return;
  const n = p.last ? Math.min(p.last.shown, p.cols * p.rows) : 0;
  while (p.tiles.children.length > n) p.tiles.lastChild.remove();
  while (p.tiles.children.length < n) {
    const t = document.createElement('div');
    t.className = 'bp-tile';
    t.tabIndex = -1;
    t.setAttribute('role', 'button');
    t.dataset.index = String(p.tiles.children.length);
    p.tiles.append(t);
  }
  p.focusIndex = Math.min(p.focusIndex, Math.max(0, n - 1));
  // The grid's geometry changes with the panel's layout, not per frame.
  const geom = `${p.cols}/${p.tw}/${p.th}`;
  for (let i = 0; i < n; i++) {
    const t = p.tiles.children[i];
    const ch = p.last.chans[i];
    t.tabIndex = i === p.focusIndex ? 0 : -1;
    if (t.dataset.geom !== geom) {
      t.dataset.geom = geom;
      t.style.left = `${(i % p.cols) * (p.tw + GAP)}px`;
      t.style.top = `${Math.floor(i / p.cols) * (p.th + GAP)}px`;
      t.style.width = `${p.tw}px`;
      t.style.height = `${p.th}px`;
    }
    const label = `Block ${p.name}, channel ${ch}: lay this feature map over the input`;
    if (t.getAttribute('aria-label') !== label) t.setAttribute('aria-label', label);
    t.setAttribute('aria-pressed', String(selected?.block === p.name && selected.channel === ch));
  }
}

/** Keyboard focus to map `i` of panel `p` (the panel's one Tab stop moves with it). */
function moveFocus(p, i) {
  const tiles = p.tiles.children;
  if (!tiles[i]) return;
  for (const t of tiles) t.tabIndex = -1;
  tiles[i].tabIndex = 0;
  p.focusIndex = i;
  tiles[i].focus();
}

/** The head's pooled vector: one bar per channel, height and colour by value. */
function drawVector(ctx, v, cssW, cssH) {
  let hi = 0;
  for (const x of v) if (x > hi) hi = x;
  const table = currentLut();
  const bw = cssW / v.length;
  for (let i = 0; i < v.length; i++) {
    const t = hi > 0 ? Math.max(0, v[i]) / hi : 0;
    const k = Math.round(t * 255) * 3;
    ctx.fillStyle = `rgb(${table[k]},${table[k + 1]},${table[k + 2]})`;
    const h = Math.max(1, t * (cssH - 2));
    ctx.fillRect(i * bw, cssH - h, Math.max(bw, 1), h);
  }
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

// ------------------------------------------------------------------ selection

/** `{ block, channel }` laid over the frame, or null. */
export const selection = () => selected;

/** The selected map as last read back, `{ block, channel, H, W, data, offset }`; null until it is. */
export function selectedMap() {
  if (!selected) return null;
  const p = panels.get(selected.block);
  const k = p?.last?.chans.indexOf(selected.channel) ?? -1;
  if (k < 0) return null;
  const { H, W, data } = p.last;
  return { ...selected, H, W, data, offset: k * H * W };
}

export function clearSelection() {
  const p = selected && panels.get(selected.block);
  selected = null;
  if (p) redrawPanel(p);
  for (const q of panels.values()) q.root.classList.remove('selected');
}

function onTileClick(p, e) {
  if (!p.last) return;
  const r = p.canvas.getBoundingClientRect();
  const x = ((e.clientX - r.left) / r.width) * (p.cols * p.tw + (p.cols - 1) * GAP);
  const y = ((e.clientY - r.top) / r.height) * (p.rows * p.th + (p.rows - 1) * GAP);
  const col = Math.floor(x / (p.tw + GAP));
  const row = Math.floor(y / (p.th + GAP));
  if (col >= p.cols) return;
  selectTile(p, row * p.cols + col);
}

/** Map `i` of panel `p` selected (or, selected already, unselected): by click or keyboard. */
function selectTile(p, i) {
  if (!p.last || i < 0 || i >= p.last.shown) return;
  const ch = p.last.chans[i];
  const prev = selected && panels.get(selected.block);
  if (selected?.block === p.name && selected.channel === ch) selected = null;
  else selected = { block: p.name, channel: ch };
  if (prev && prev !== p) redrawPanel(prev);
  redrawPanel(p);
  up.overlayChanged();
  for (const q of panels.values()) q.root.classList.toggle('selected', selected?.block === q.name);
}

// ------------------------------------------------------------------ controls

function onSkipToggle(p, t) {
  const on = t.checked;
  p.root.classList.toggle('skipped', !on);
  try {
    // Safe beside a running frame: a switch applies from the next frame on.
    state.model.setBlockEnabled(p.name, on);
  } catch (e) {
    t.checked = !on;
    p.root.classList.toggle('skipped', on);
    // No model (reloading after a device loss): the panels are rebuilt with it.
    if (state.model) showError(messageOf(e));
    return;
  }
  setStatus(`${p.name} ${on ? 'enabled' : 'skipped: its output is now its input'}.`);
  up.kick({ classify: true, full: true });
}

el.channels.addEventListener('change', () => {
  for (const p of panels.values()) sizePanelCanvas(p);
  if (state.model && state.frames) {
    for (const p of panels.values()) redrawPanel(p);
    // A still is not classified again, only its panels read back; live, the next frames catch up.
    if (state.source?.kind !== 'camera') up.kick({ panels: true });
  }
});

el.colormap.addEventListener('change', () => {
  for (const p of panels.values()) redrawPanel(p);
  up.overlayChanged();
});
