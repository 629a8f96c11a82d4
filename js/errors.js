// Errors a program can tell apart: `name` is 'ResNetError' and `code` one of
// the stable codes listed in index.d.ts. The engine's own errors (thrown by
// the wasm bindings) carry the same name and codes.

export function resnetError(code, message, options) {
  const e = new Error(message, options);
  e.name = 'ResNetError';
  e.code = code;
  return e;
}

/** Throws BAD_INPUT with `message` unless `ok`. */
export function expect(ok, message) {
  if (!ok) throw resnetError('BAD_INPUT', message);
}

/** Throws BAD_INPUT (`what`: which buffer) unless `buffer` (an ArrayBuffer) is still readable: one transferred away (postMessage, structuredClone) reads as empty. */
export function expectAttached(buffer, what) {
  let gone = buffer.detached;
  if (typeof gone !== 'boolean') {
    // Before ArrayBuffer.prototype.detached: a view of a detached buffer cannot be made.
    try {
      new Uint8Array(buffer);
      gone = false;
    } catch {
      gone = true;
    }
  }
  expect(!gone, `${what} was transferred (detached, by postMessage or structuredClone) and holds nothing any more: pass a copy instead`);
}

/** Whether `v` is a whole number a wasm u32 argument holds (larger ones would wrap). */
export const isU32 = (v) => Number.isInteger(v) && v >= 0 && v <= 0xffffffff;

/** The largest input side the engine takes (src/model.rs MAX_INPUT_SIDE). */
export const MAX_INPUT_SIDE = 4096;
const MIN_INPUT_SIDE = 32;

/** `224` or `[h, w]` → `[h, w]`, checked: integers within 32…4096. */
export function inputSizeOf(inputSize) {
  const [h, w] = Array.isArray(inputSize) ? inputSize : [inputSize, inputSize];
  const ok = (v) => Number.isInteger(v);
  expect(ok(h) && ok(w) && (!Array.isArray(inputSize) || inputSize.length === 2), `input size must be an integer or [height, width] of integers, got ${JSON.stringify(inputSize)}`);
  if (h > MAX_INPUT_SIDE || w > MAX_INPUT_SIDE) {
    throw resnetError('INPUT_TOO_LARGE', `input size ${h}×${w} is larger than the engine takes (at most ${MAX_INPUT_SIDE} on a side)`);
  }
  expect(h >= MIN_INPUT_SIDE && w >= MIN_INPUT_SIDE, `input size ${h}×${w} is smaller than the network allows (at least ${MIN_INPUT_SIDE}×${MIN_INPUT_SIDE})`);
  return [h, w];
}

/** A value in a message; JSON.stringify throws on a BigInt. */
export const show = (v) => {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
};

/** An `Error` named 'AbortError', as `fetch` throws for an aborted signal. */
export function abortError(message) {
  const e = new Error(message);
  e.name = 'AbortError';
  return e;
}
