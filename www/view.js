// The frame view: the part of the frame the network sees, with the selected
// feature map, or else the class activation map of the top class, laid over it.

import { labelOf, state } from './state.js';
import { LUTS, currentLut, paintMap } from './colormaps.js';
import { clearSelection, selectedMap, selection } from './panels.js';

const $ = (sel) => document.querySelector(sel);
const el = {
  view: $('#view'),
  overlay: $('#overlay'),
  stage: $('#stage'),
  stageEmpty: $('#stage-empty'),
  overlayCaption: $('#overlay-caption'),
  overlayText: $('#overlay-text'),
  camToggle: $('#cam-toggle'),
  alpha: $('#overlay-alpha'),
  sizeSelect: $('#size-select'),
  video: $('#video'),
};

// The frame loop imports this module; app.js hands its kick in here.
const up = { kick: (request) => {} };
export const connectView = (hooks) => Object.assign(up, hooks);

let lastCam = null; // { width, height, data, index }: the last class activation map

/** Whether the class activation map is switched on. */
export const camOn = () => el.camToggle.checked;

function inputSize() {
  return state.model?.info.inputSize ?? [Number(el.sizeSelect.value), Number(el.sizeSelect.value)];
}

/** Gives the view the network input's aspect ratio, and redraws it. */
export function resizeView() {
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

/** The region of a w×h frame the network sees; before a model is loaded, a plain centre square. */
function cropOf(w, h) {
  try {
    if (state.model) return state.model.crop(w, h);
  } catch (e) {
    // Only a preview: fall back to the square rather than stop drawing.
  }
  const s = Math.min(w, h);
  return { x: (w - s) / 2, y: (h - s) / 2, width: s, height: s };
}

function drawSource(src, sw, sh) {
  const ctx = el.view.getContext('2d');
  const r = cropOf(sw, sh);
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(src, r.x, r.y, r.width, r.height, 0, 0, el.view.width, el.view.height);
}

/** Draws a still source (the webcam draws itself every animation frame). */
export function drawStill() {
  const s = state.source;
  el.stageEmpty.hidden = !!s;
  if (!s || s.kind !== 'image') return;
  const w = s.el.naturalWidth || s.el.width;
  const h = s.el.naturalHeight || s.el.height;
  if (w && h) drawSource(s.el, w, h);
}

// The webcam is drawn at the display's rate, however slowly it is classified.
function videoLoop() {
  requestAnimationFrame(videoLoop);
  if (state.source?.kind === 'camera' && el.video.readyState >= 2 && el.video.videoWidth) {
    drawSource(el.video, el.video.videoWidth, el.video.videoHeight);
    el.stageEmpty.hidden = true;
  }
}
requestAnimationFrame(videoLoop);

// ------------------------------------------------------------------ overlay

/** The selected feature map, else the class activation map when switched on, else nothing. */
export function drawOverlay() {
  const ctx = el.overlay.getContext('2d');
  ctx.clearRect(0, 0, el.overlay.width, el.overlay.height);
  const alpha = Number(el.alpha.value);
  if (selection()) {
    const map = selectedMap();
    if (!map) return; // not read back yet
    const { H, W, data, offset } = map;
    drawMap(ctx, paintMap(data, offset, H, W, currentLut()), alpha);
    el.overlayText.textContent = `${map.block} · channel ${map.channel} (${H}×${W}) over the input`;
    el.overlayCaption.hidden = false;
  } else if (el.camToggle.checked && lastCam) {
    const { width, height, data, index } = lastCam;
    drawMap(ctx, paintMap(data, 0, height, width, LUTS.inferno, { alphaByValue: true }), Math.min(1, alpha + 0.15));
    el.overlayText.textContent = `Class activation map: ${labelOf(index)}`;
    el.overlayCaption.hidden = false;
  } else {
    el.overlayCaption.hidden = true;
  }
}

function drawMap(ctx, canvas, alpha) {
  ctx.globalAlpha = alpha;
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(canvas, 0, 0, el.overlay.width, el.overlay.height);
  ctx.globalAlpha = 1;
}

/** A new model or input size: the old class activation map no longer fits. */
export function resetOverlay() {
  lastCam = null;
  drawOverlay();
}

/** Reads the class activation map of class `index` for the last frame, and shows it. */
export async function updateCam(m, index) {
  const cam = await m.classActivationMap(index);
  lastCam = { ...cam, index };
  drawOverlay();
}

$('#overlay-close').addEventListener('click', () => {
  if (selection()) clearSelection();
  else el.camToggle.checked = false;
  drawOverlay();
});
el.alpha.addEventListener('input', drawOverlay);

el.camToggle.addEventListener('change', () => {
  // The map of the frame already classified: the loop reads it between frames.
  if (el.camToggle.checked && state.lastResult?.top.length) up.kick({ cam: true });
  else drawOverlay();
});
