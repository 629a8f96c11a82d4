// Frames → RGBA pixels for the engine, through one reused 2D canvas. A frame
// much larger than the network needs is not scaled here (the browser's
// filter differs from the engine's, and between a canvas and an
// OffscreenCanvas): only the part the network sees (`frameRect`: the view
// and its filter's reach) is copied, pixel for pixel, and handed to the
// engine in strips, which its resize consumes one at a time. So the answer
// is the CLI's for any size, and wasm memory (which never shrinks) holds a
// strip, not the photo.
import { expectAttached, resnetError } from './errors.js';

/** Largest frame handed to the engine, in pixels (a 4096×4096 photo). */
const MAX_PIXELS = 4096 * 4096;
/** Frames keep up to this many times the resized shorter side: the engine's antialiased resize then does the rest, as torchvision would. */
const HEADROOM = 4;

let canvas = null;
let ctx = null;

function frameSize(f) {
  if (typeof HTMLVideoElement !== 'undefined' && f instanceof HTMLVideoElement) return [f.videoWidth, f.videoHeight];
  if (typeof HTMLImageElement !== 'undefined' && f instanceof HTMLImageElement) return [f.naturalWidth, f.naturalHeight];
  if (typeof VideoFrame !== 'undefined' && f instanceof VideoFrame) return [f.displayWidth, f.displayHeight];
  return [f.width, f.height];
}

const DRAWABLE = ['HTMLVideoElement', 'HTMLImageElement', 'HTMLCanvasElement', 'OffscreenCanvas', 'ImageBitmap', 'VideoFrame', 'SVGImageElement'];

function isFrame(f) {
  if (typeof ImageData !== 'undefined' && f instanceof ImageData) return true;
  if (DRAWABLE.some((t) => typeof globalThis[t] !== 'undefined' && f instanceof globalThis[t])) return true;
  // Another realm's element (an iframe's canvas): drawable if it has a size.
  return typeof f === 'object' && f !== null && (Number.isFinite(f.videoWidth) || Number.isFinite(f.width));
}

/** The size a `w`×`h` frame is handed over at, for a network input of `[ih, iw]`. */
export function scaledSize(w, h, [ih, iw]) {
  const need = Math.ceil((Math.max(ih, iw) * 256) / 224);
  let s = Math.min(1, (HEADROOM * need) / Math.min(w, h), Math.sqrt(MAX_PIXELS / (w * h)));
  // Never below what the resize needs (an extremely elongated frame may then
  // still be too large: the engine says so).
  s = Math.max(s, Math.min(1, need / Math.min(w, h)));
  return s >= 1 ? [w, h] : [Math.max(1, Math.round(w * s)), Math.max(1, Math.round(h * s))];
}

/** A frame's size; BAD_INPUT for what is no frame, or has no picture yet. */
function checkFrame(frame) {
  if (!isFrame(frame)) {
    throw resnetError('BAD_INPUT', `classify needs a frame (a video, image, canvas, ImageBitmap, ImageData or VideoFrame), got ${frame === null ? 'null' : typeof frame}`);
  }
  const [w, h] = frameSize(frame);
  if (!w || !h) throw resnetError('BAD_INPUT', 'the frame has no pixels (a video not playing yet, an image not loaded, or a closed ImageBitmap or VideoFrame)');
  // A video knows its size from its metadata on, but has a picture to draw
  // only from HAVE_CURRENT_DATA: before that drawImage draws nothing, and the
  // result would be for a black frame.
  if (typeof HTMLVideoElement !== 'undefined' && frame instanceof HTMLVideoElement && frame.readyState < 2) {
    throw resnetError('BAD_INPUT', 'the video has no frame to show yet (wait for its `loadeddata` event)');
  }
  if (typeof HTMLImageElement !== 'undefined' && frame instanceof HTMLImageElement && !frame.complete) {
    throw resnetError('BAD_INPUT', 'the image is still loading (wait for its `load` event, or `await img.decode()`)');
  }
  return [w, h];
}

/** `source` drawn at `tw`×`th` on the reused canvas, read back. */
function draw(source, tw, th) {
  if (!canvas) canvas = typeof OffscreenCanvas !== 'undefined' ? new OffscreenCanvas(tw, th) : document.createElement('canvas');
  if (canvas.width !== tw || canvas.height !== th) {
    canvas.width = tw;
    canvas.height = th;
    ctx = null;
  }
  ctx ??= canvas.getContext('2d', { willReadFrequently: true });
  ctx.imageSmoothingQuality = 'high';
  try {
    ctx.drawImage(source, 0, 0, tw, th);
  } catch (e) {
    // A closed ImageBitmap or VideoFrame, a broken image.
    throw resnetError('BAD_INPUT', `the frame cannot be drawn (${e?.message ?? e}): a closed ImageBitmap or VideoFrame, or a broken image?`, { cause: e });
  }
  try {
    return ctx.getImageData(0, 0, tw, th);
  } catch (e) {
    if (e?.name !== 'SecurityError') throw e;
    throw resnetError('BAD_INPUT', 'the frame comes from another origin without CORS (its pixels cannot be read): serve it with Access-Control-Allow-Origin and set crossOrigin="anonymous"', { cause: e });
  }
}

/** The `[x, y, width, height]` part of `source` (a drawable), pixel for pixel. */
function drawRect(source, [x, y, rw, rh]) {
  const c = typeof OffscreenCanvas !== 'undefined' ? new OffscreenCanvas(rw, rh) : Object.assign(document.createElement('canvas'), { width: rw, height: rh });
  const g = c.getContext('2d', { willReadFrequently: true });
  g.imageSmoothingEnabled = false;
  try {
    g.drawImage(source, x, y, rw, rh, 0, 0, rw, rh);
  } catch (e) {
    throw resnetError('BAD_INPUT', `the frame cannot be drawn (${e?.message ?? e}): a closed ImageBitmap or VideoFrame, or a broken image?`, { cause: e });
  }
  try {
    return g.getImageData(0, 0, rw, rh).data;
  } catch (e) {
    if (e?.name !== 'SecurityError') throw e;
    throw resnetError('BAD_INPUT', 'the frame comes from another origin without CORS (its pixels cannot be read): serve it with Access-Control-Allow-Origin and set crossOrigin="anonymous"', { cause: e });
  }
}

/** Rows `[y, y + rh)`, columns `[x, x + rw)` of an ImageData's pixels. */
function sliceRect(img, [x, y, rw, rh]) {
  const out = new Uint8ClampedArray(rw * rh * 4);
  for (let r = 0; r < rh; r++) out.set(img.data.subarray(((y + r) * img.width + x) * 4, ((y + r) * img.width + x + rw) * 4), r * rw * 4);
  return out;
}

/**
 * Captures any frame now, synchronously: a queued classify must see the frame
 * it was called with, not what a canvas, video or reused ImageData holds when
 * its turn comes. A frame the engine can take whole is read back at once (an
 * ImageData copied); a much larger one is copied only where the network
 * looks (`rectOf(w, h, inputSize)`: the engine's `frameRect`), to be handed
 * over in strips. `exact: false` (augmented training, which crops at random)
 * scales a large frame down instead, by the browser. Returns
 * `(inputSize) => ImageData | { strips: { width, height, rect, data } } | Promise<ImageData>`.
 */
export function captureFrame(frame, inputSize, rectOf, { exact = true } = {}) {
  const [w, h] = checkFrame(frame);
  const [tw, th] = scaledSize(w, h, inputSize);
  const large = tw !== w || th !== h;
  const isData = typeof ImageData !== 'undefined' && frame instanceof ImageData;
  if (isData) expectAttached(frame.data.buffer, "the ImageData's buffer");
  if (large && exact) {
    const rect = Array.from(rectOf(w, h, inputSize));
    const data = isData ? sliceRect(frame, rect) : drawRect(frame, rect);
    return () => ({ strips: { width: w, height: h, rect, data } });
  }
  if (isData) {
    const copy = new ImageData(frame.data.slice(), w, h, frame.colorSpace ? { colorSpace: frame.colorSpace } : undefined);
    return (size) => scaleDown(copy, size);
  }
  const px = draw(frame, tw, th);
  return () => px;
}

/** Bytes of a strip handed to the engine at once. */
const STRIP_BYTES = 1 << 20;

/**
 * Hands a frame captured in strips to `m` (a WasmResNet or WasmTrainer):
 * `begin_strips`, then `push_strip` through one `pixel_view` of at most
 * STRIP_BYTES, so wasm memory holds a strip whatever the frame's size.
 */
export function handOverStrips(m, { width, height, rect, data }) {
  m.begin_strips(width, height, Uint32Array.from(rect));
  const rowBytes = rect[2] * 4;
  const rows = Math.max(1, Math.floor(STRIP_BYTES / rowBytes));
  for (let r = 0; r < rect[3]; r += rows) {
    const n = Math.min(rows, rect[3] - r);
    m.pixel_view(n * rowBytes).set(data.subarray(r * rowBytes, (r + n) * rowBytes));
    m.push_strip(n * rowBytes);
  }
}

/** An ImageData, scaled down where it is much larger than needed. */
async function scaleDown(data, inputSize) {
  const [tw, th] = scaledSize(data.width, data.height, inputSize);
  if (tw === data.width && th === data.height) return data;
  const bitmap = await createImageBitmap(data);
  try {
    return draw(bitmap, tw, th);
  } finally {
    bitmap.close();
  }
}
