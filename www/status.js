// The status bar (line, spinner, download progress) and the always-visible
// error area.

import { state } from './state.js';

const $ = (sel) => document.querySelector(sel);
const el = {
  status: $('#status'),
  spinner: $('#spinner'),
  progress: $('#progress'),
  progressText: $('#progress-text'),
  error: $('#error'),
  errorBox: $('#error-box'),
  errorActions: $('#error-actions'),
};

export function setStatus(text, busy = false) {
  el.status.textContent = text;
  el.spinner.hidden = !busy;
}

export function hideSpinner() {
  el.spinner.hidden = true;
}

/** Shows a message in the always-visible error area. `offer`: show the demo / local-file way out. */
export function showError(message, { offer = false } = {}) {
  console.warn('[resnet page]', message);
  state.errors.push(message);
  el.error.textContent = message;
  el.errorBox.hidden = false;
  el.errorActions.hidden = !offer;
}

export function clearError() {
  el.error.textContent = '';
  el.errorBox.hidden = true;
  el.errorActions.hidden = true;
}

export const messageOf = (e) => (e && (e.message || (typeof e === 'string' ? e : e.name))) || String(e);

let lengthUnknown = false; // this read's length is unknown (see showProgress)

/** A download or file read starts: an empty bar (`show`: false for the demo weights, made in the page). */
export function startProgress(show) {
  el.progress.hidden = !show;
  el.progress.value = 0;
  el.progressText.textContent = '';
  lengthUnknown = false;
}

/**
 * Without a length (a server that sends none, weights cached by an older
 * version) the package reports (0, 0) first, then the bytes so far as the
 * total: the bar then just moves instead of showing full at once.
 */
export function showProgress(loaded, total) {
  el.progress.hidden = false;
  const mb = (n) => (n / 1e6).toFixed(1);
  if (!(total > 0)) lengthUnknown = true;
  if (!lengthUnknown) {
    el.progress.max = total;
    el.progress.value = loaded;
    el.progressText.textContent = `${mb(loaded)} / ${mb(total)} MB`;
  } else {
    el.progress.removeAttribute('value');
    el.progressText.textContent = `${mb(loaded)} MB`;
  }
}

export function endProgress() {
  el.progress.hidden = true;
  el.progressText.textContent = '';
}

$('#error-close').addEventListener('click', clearError);

window.addEventListener('unhandledrejection', (ev) => {
  showError(`Unexpected error: ${messageOf(ev.reason)}`);
});
