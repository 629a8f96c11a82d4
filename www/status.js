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

/** A download or file read starts: an empty bar (`show`: false for the demo weights, made in the page). */
export function startProgress(show) {
  el.progress.hidden = !show;
  el.progress.value = 0;
  el.progressText.textContent = '';
}

/** `total` is 0 when the server sends no length: the bar then just moves. */
export function showProgress(loaded, total) {
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

export function endProgress() {
  el.progress.hidden = true;
  el.progressText.textContent = '';
}

$('#error-close').addEventListener('click', clearError);

window.addEventListener('unhandledrejection', (ev) => {
  showError(`Unexpected error: ${messageOf(ev.reason)}`);
});
