// The frame loop: classifies the source and refreshes what shows the result.
//
// One loop (`pump`) makes every asynchronous call on the model for the page,
// so at most one classify is in flight; the live webcam is classified as
// fast as it goes while the tab shows (and drawn on its own
// requestAnimationFrame, view.js). A
// still gets every panel read back; live, a few panels per frame.
//
// Model swaps and re-plans run with the loop stopped (`pauseLoop`): never
// disposing a model the loop is using, nor reading panels of the old size
// after a re-plan. The page's other calls are synchronous (block switches,
// statistics) and the package lets them run beside a frame.

import { state, page, labelOf } from './state.js';
import { messageOf, setStatus, showError } from './status.js';
import { nextPanels, panelNames, refreshPanel } from './panels.js';
import { camOn, updateCam } from './view.js';
import { renderMetrics, renderResiduals, renderTimings, renderTop5 } from './results.js';

const PANELS_PER_FRAME = 3; // live: how many block panels are read back per frame

const video = document.querySelector('#video');

// models.js and inputs.js import this module; app.js hands their calls in here.
const up = {
  modelError: async (e, m) => false, // a device loss: reload; true when handled
  cameraFailed: () => {}, // classifying the webcam failed: stop it
};
export const connectLoop = (hooks) => Object.assign(up, hooks);

/**
 * What the loop owes the page; requests add up until done (flags, not a queue).
 * classify: the still needs (re)classifying; full: refresh every panel after the
 * next classify; panels / cam: read the panels / the class activation map of the
 * last frame again (a still; live, the next frame does it anyway).
 */
const want = { classify: false, full: false, panels: false, cam: false };
let running = false;
let idle = Promise.resolve(); // settles when the running loop stops
let paused = 0; // swaps and re-plans under way

/** Asks the loop for `request` (see `want`) and starts it unless it runs. */
export function kick(request = {}) {
  for (const k of Object.keys(want)) if (request[k]) want[k] = true;
  if (!running) idle = pump();
}

/**
 * Runs `fn` once the running frame has finished, with the loop stopped until it
 * returns; then the loop goes on with whatever was asked meanwhile.
 */
export async function pauseLoop(fn) {
  paused += 1;
  try {
    await idle;
    return await fn();
  } finally {
    paused -= 1;
    kick();
  }
}

const cameraLive = () => state.source?.kind === 'camera' && video.readyState >= 2 && video.videoWidth > 0;

// The next animation frame, or 250 ms when none comes (a tab being hidden has
// none); whichever comes first cancels the other, or rAF callbacks pile up.
const nextFrame = () =>
  new Promise((resolve) => {
    const t = setTimeout(() => {
      cancelAnimationFrame(raf);
      resolve();
    }, 250);
    const raf = requestAnimationFrame(() => {
      clearTimeout(t);
      resolve();
    });
  });

// The live loop stops while the tab is hidden (nobody sees the frames) and
// starts again when it shows.
document.addEventListener('visibilitychange', () => {
  if (!document.hidden) kick();
});

function takeAll() {
  const taken = { ...want };
  for (const k of Object.keys(want)) want[k] = false;
  return taken;
}

async function pump() {
  running = true;
  try {
    for (;;) {
      const m = state.model;
      if (!m || paused) break;
      const src = state.source;
      if (src?.kind === 'camera') {
        if (document.hidden) break;
        if (!cameraLive()) {
          await nextFrame();
          continue;
        }
        if (!(await step(m, takeAll().full))) break;
        await nextFrame();
      } else if (src && want.classify) {
        takeAll();
        if (!(await step(m, true))) break;
      } else if (src && state.lastResult && (want.panels || want.cam)) {
        if (!(await touchUp(m, takeAll()))) break;
      } else break;
    }
  } finally {
    running = false;
  }
}

/** One frame: classify, then update everything. Returns false to stop the loop. */
async function step(m, full) {
  const src = state.source;
  const res = await classify(m, src);
  if (!res || m !== state.model) return false;
  page.lostSinceFrame = false;
  state.lastResult = res;
  state.frames += 1;
  renderTop5(res);
  renderMetrics(res, src.kind === 'camera');
  try {
    renderTimings(m.timings());
    renderResiduals(m.residuals());
  } catch (e) {
    console.warn('stats unavailable:', e);
  }
  const cam = camOn() && res.top.length ? res.top[0].index : null;
  // Which panels to read back: all of them for a still image, a few per frame live.
  if (!(await readBack(m, cam, full ? panelNames() : nextPanels(PANELS_PER_FRAME)))) return false;
  if (full) state.settled += 1;
  if (src.kind !== 'camera' && m === state.model && !page.loading) {
    setStatus(`${src.name}: ${labelOf(res.top[0]?.index ?? 0)} (${res.ms.toFixed(0)} ms).`);
  }
  return true;
}

/** `classify` of the source's current frame, or null when it failed (and was reported). */
async function classify(m, src) {
  try {
    return await m.classify(src.kind === 'camera' ? video : src.el, { topk: 5 });
  } catch (e) {
    if (await up.modelError(e, m)) return null;
    setStatus('Classifying failed.');
    showError(`Classifying failed: ${messageOf(e)}`);
    if (src.kind === 'camera') up.cameraFailed();
    return null;
  }
}

/** A toggle on a still (channels per block, the class activation map): read the last frame again. */
async function touchUp(m, { panels, cam }) {
  const top = state.lastResult.top;
  return readBack(m, cam && camOn() && top.length ? top[0].index : null, panels ? panelNames() : []);
}

/** Reads back the class activation map of class `cam` (unless null) and the panels `names`. */
async function readBack(m, cam, names) {
  try {
    if (cam !== null) await updateCam(m, cam);
    for (const name of names) {
      if (m !== state.model) return false;
      await refreshPanel(m, name);
    }
    return true;
  } catch (e) {
    if (await up.modelError(e, m)) return false;
    // A trainer's fit gave the model new weights between this frame's
    // classify and its panels: the next frame reads them.
    if (e?.code === 'NO_FRAME') {
      want.classify = want.full = true;
      return true;
    }
    // Ends the "Classifying…" spinner of a still too.
    setStatus('Reading the activations failed.');
    showError(`Reading the activations failed: ${messageOf(e)}`);
    return false;
  }
}
