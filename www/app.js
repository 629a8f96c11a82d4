// The page: loads a ResNet (demo weights, ImageNet from the Hugging Face hub,
// or a local file), classifies the webcam, an image or a sample photo, and
// shows what every block computes.
//
// Each part lives in the module named for it; each imports only modules above
// it in this list, and the few calls back up (a panel asking the loop for a
// frame, the loop reporting a lost device) are handed in below.
//   state.js      the shared state (window.__resnet)
//   status.js     status line, download progress, error area
//   colormaps.js  colour maps, painting one feature map
//   panels.js     the activation panels and the selected feature map
//   view.js       the frame view and what lies over it
//   results.js    top 5, metrics, time per stage, residual chart
//   loop.js       the frame loop: classify, then refresh everything
//   models.js     model picker, loading, input size, device-loss reload
//   inputs.js     image files, samples, drag and drop, webcam
//   teach.js      Teach mode: record classes, train, curves, gradient flow
//   experiment.js Why residual? a ResNet and its plain twin trained side by side
// This one boots the page and connects them.

import { page } from './state.js';
import { messageOf, setStatus, showError } from './status.js';
import { connectPanels } from './panels.js';
import { connectView, drawOverlay, resizeView } from './view.js';
import { drawResidualChart } from './results.js';
import { connectLoop, kick } from './loop.js';
import { MODELS, handleModelError, loadModel, onModelSelect, pickModel, specFromPicker, syncPrecision } from './models.js';
import { stopCamera } from './inputs.js';
import './teach.js';
import './experiment.js';

connectPanels({ overlayChanged: drawOverlay, kick });
connectView({ kick });
connectLoop({ modelError: handleModelError, cameraFailed: () => stopCamera() });

const sizeSelect = document.querySelector('#size-select');
const modeSelect = document.querySelector('#mode-select');

/** `?size=N` (added to the picker when it is not there) and `?mode=fast|inspect`. */
function applyUrlOptions(params) {
  // Only a whole number the engine takes (32…4096); anything else is ignored.
  const raw = params.get('size');
  const size = /^\d+$/.test(raw ?? '') && Number(raw) >= 32 && Number(raw) <= 4096 ? String(Number(raw)) : null;
  if (size && ![...sizeSelect.options].some((o) => o.value === size)) sizeSelect.add(new Option(`${size} × ${size}`, size));
  if (size) sizeSelect.value = size;
  if (params.get('mode') === 'inspect' || params.get('mode') === 'fast') modeSelect.value = params.get('mode');
}

async function main() {
  onModelSelect();
  resizeView();
  drawResidualChart();
  const params = new URLSearchParams(location.search);
  applyUrlOptions(params);
  setStatus('Loading the engine…', true);
  try {
    // Imported here, not at the top, so that a missing or broken build still
    // leaves a readable message on the page instead of a blank one.
    page.lib = await import('../js/index.js');
  } catch (e) {
    setStatus('The engine did not load.');
    // Code this browser cannot parse or compile: too old, not an unbuilt package.
    if (e?.name === 'SyntaxError' || e?.name === 'CompileError') {
      showError(`This browser is too old for this page (${messageOf(e)}): use Chrome or Edge 96+, Firefox 92+ or Safari 16.4+.`);
    } else {
      showError(`Could not load the WebAssembly engine (../js/index.js, ../pkg/): ${messageOf(e)}. Build it with tools/build_wasm.sh.`);
    }
    return;
  }
  // Without the class names, classes are just called `class N`.
  const labelsReady = page.lib.imagenetClasses().then(
    (labels) => (page.labels = labels),
    (e) => console.warn('ImageNet class names unavailable:', e),
  );
  setStatus('Checking for WebGPU…', true);
  const support = await page.lib.webgpuSupport().catch((e) => ({ ok: false, message: messageOf(e) }));
  await labelsReady;
  // Without WebGPU the CPU backend runs the same network (backend 'auto'); say so once.
  page.noWebgpu = support.ok ? null : support.message;
  if (!support.ok) {
    const opt = document.querySelector('#backend-select option[value="webgpu"]');
    opt.disabled = true;
    opt.textContent = 'WebGPU (not available here)';
  }
  const backend = params.get('backend');
  if (['auto', 'webgpu', 'cpu'].includes(backend)) document.querySelector('#backend-select').value = backend;
  // The f16 path where the adapter has shader-f16 (`?precision=f16` picks it).
  page.f16 = !!(support.ok && support.f16);
  if (params.get('precision') === 'f16') document.querySelector('#precision-select').value = 'f16';
  syncPrecision();
  // Start with the offline demo weights (small, no download) unless told otherwise.
  const want = params.get('model') ?? 'demo';
  if (want === 'none') {
    setStatus('Pick a model and press “Load model”.');
    return;
  }
  if (Object.hasOwn(MODELS, want) || want === 'demo') {
    pickModel(want);
    await loadModel(specFromPicker());
  } else setStatus('Pick a model and press “Load model”.');
  const sample = params.get('sample');
  if (sample) document.querySelector(`.sample[data-src$="/${CSS.escape(sample)}"]`)?.click();
}

main().catch((e) => {
  setStatus('The page failed to start.');
  showError(messageOf(e));
});
