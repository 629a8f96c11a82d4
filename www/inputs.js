// What to classify: an image file (chosen or dropped), a sample photo, or the
// webcam. Dropped .safetensors files are loaded as the model instead.

import { page, state } from './state.js';
import { clearError, hideSpinner, messageOf, setStatus, showError } from './status.js';
import { kick } from './loop.js';
import { drawStill } from './view.js';
import { resetFps } from './results.js';
import { loadWeightsFile } from './models.js';

const $ = (sel) => document.querySelector(sel);
const el = {
  camStart: $('#camera-start'),
  camStop: $('#camera-stop'),
  video: $('#video'),
  imageFile: $('#image-file'),
  dropZone: $('#drop-zone'),
  stage: $('#stage'),
};

let stream = null; // webcam MediaStream
let objectUrl = null; // of the last image file, revoked when the next one comes

// ------------------------------------------------------------------ images

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
  state.source = { kind: 'image', el: img, name };
  drawStill();
  if (!state.model) setStatus(page.loading ? 'The image will be classified once the model is loaded.' : 'Load a model to classify this image.');
  else setStatus(`Classifying ${name}…`, true);
  kick({ classify: true, full: true });
}

function useImageFile(file) {
  if (!file) return;
  if (/\.safetensors$/i.test(file.name)) {
    loadWeightsFile(file);
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
    state.source = { kind: 'camera' };
    el.stage.classList.add('live');
    el.camStop.disabled = false;
    resetFps();
    setStatus(state.model ? 'Webcam live.' : page.loading ? 'Webcam live; waiting for the model…' : 'Webcam live. Load a model to classify it.');
    kick({ full: true });
  } catch (e) {
    if (stream) for (const t of stream.getTracks()) t.stop();
    stream = null;
    el.video.srcObject = null;
    el.camStart.disabled = false;
    setStatus(state.model ? `${state.model.info.description} ready.` : 'No model loaded.');
    showError(cameraMessage(e));
  } finally {
    hideSpinner();
  }
}

/** Stops the webcam; by default its last frame stays as a still input. */
export function stopCamera({ snapshot = true } = {}) {
  if (snapshot && state.source?.kind === 'camera' && el.video.videoWidth) {
    const c = document.createElement('canvas');
    c.width = el.video.videoWidth;
    c.height = el.video.videoHeight;
    c.getContext('2d').drawImage(el.video, 0, 0);
    state.source = { kind: 'image', el: c, name: 'the last webcam frame' };
  } else if (state.source?.kind === 'camera') {
    state.source = null;
  }
  if (stream) for (const t of stream.getTracks()) t.stop();
  stream = null;
  el.video.srcObject = null;
  el.stage.classList.remove('live');
  el.camStart.disabled = false;
  el.camStop.disabled = true;
  resetFps();
  drawStill();
}

el.camStart.addEventListener('click', startCamera);
el.camStop.addEventListener('click', () => {
  stopCamera();
  if (!state.source || !state.model) {
    setStatus('Webcam stopped.');
    return;
  }
  // The still it leaves shows the top-5 and panels of earlier frames: classify it.
  setStatus('Webcam stopped; classifying its last frame…', true);
  kick({ classify: true, full: true });
});
