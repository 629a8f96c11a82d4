// The ResNet class's own JavaScript, in Node with no browser and no engine:
// a stand-in for the wasm model (the few methods of src/bindings.rs that
// js/index.js calls) records what reaches it. Bad arguments reject the
// promise (never throw), nothing past u32 wraps, transferred buffers are
// refused, and a queued call sees its input as it was when called.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ResNet } from '../../js/index.js';
import { openWeights } from '../../js/sources.js';

// Node has no ImageData: enough of one for frames.js, which copies it (and,
// this small, hands it over unscaled, with no canvas).
globalThis.ImageData ??= class ImageData {
  constructor(data, width, height) {
    Object.assign(this, { data, width, height });
  }
};

/** A model over a stand-in engine, and what reached the engine. */
function standIn() {
  const seen = [];
  let view = null;
  const wasm = {
    info: () => ({ description: 'stand-in', classes: 4, inputSize: [32, 32], mode: 'fast', precision: 'f32', backend: 'cpu', adapter: 'none', timestampQuery: false }),
    crop: (width, height) => ({ x: 0, y: 0, width, height }),
    pixel_view: (n) => (view = new Uint8Array(n)),
    submit_pixels: () => seen.push(['pixels', view[0]]),
    submit_tensor: (x) => seen.push(['tensor', x[0]]),
    output: async () => ({ logits: Float32Array.of(0, 3, 1, 2), probs: Float32Array.of(0.1, 0.4, 0.2, 0.3) }),
    activation: async (name, channels) => (seen.push(['activation', channels && Array.from(channels)]), { shape: [1, 1, 1], data: new Float32Array(1) }),
    class_activation_map: async () => ({ width: 1, height: 1, data: new Float32Array(1) }),
    set_input_size: async (h, w) => void seen.push(['size', h, w]),
    free: () => {},
  };
  return { m: new ResNet(wasm, null, 'a stand-in'), seen };
}

const image = (v) => new ImageData(new Uint8ClampedArray(16 * 16 * 4).fill(v), 16, 16);
const tensor = (v) => new Float32Array(3 * 32 * 32).fill(v);
const transferred = (view) => (structuredClone(view.buffer, { transfer: [view.buffer] }), view);

/** The call's outcome: 'ok', the rejection's code, or 'threw …' where it threw instead of rejecting. */
function outcome(f) {
  let p;
  try {
    p = f();
  } catch (e) {
    return Promise.resolve(`threw ${e.code ?? e}`);
  }
  if (!(p instanceof Promise)) return Promise.resolve('not a promise');
  return p.then(
    () => 'ok',
    (e) => (e?.name === 'ResNetError' ? e.code : `not a ResNetError: ${e}`),
  );
}

test('promise-returning methods reject bad arguments instead of throwing, and take null options', async () => {
  const { m, seen } = standIn();
  const cases = {
    'classify topk 0': () => m.classify(image(1), { topk: 0 }),
    'classify options null': () => m.classify(image(1), null),
    'classify(null)': () => m.classify(null),
    'classifyTensor of a Uint8Array': () => m.classifyTensor(new Uint8Array(3)),
    'classifyTensor options null': () => m.classifyTensor(tensor(1), null),
    'activation(42)': () => m.activation(42),
    'activation options null': () => m.activation('layer1.0', null),
    'channels [2**32]': () => m.activation('layer1.0', { channels: [2 ** 32] }),
    'channels [-1]': () => m.activation('layer1.0', { channels: [-1] }),
    'channels [0.5]': () => m.activation('layer1.0', { channels: [0.5] }),
    'channels [1n]': () => m.activation('layer1.0', { channels: [1n] }),
    'channels a string': () => m.activation('layer1.0', { channels: '12' }),
    'channels a Uint16Array': () => m.activation('layer1.0', { channels: Uint16Array.of(1, 2) }),
    'classActivationMap(NaN)': () => m.classActivationMap(NaN),
    'setInputSize(-1)': () => m.setInputSize(-1),
    'setInputSize(2**32 + 64)': () => m.setInputSize(2 ** 32 + 64),
  };
  const got = {};
  for (const [name, f] of Object.entries(cases)) got[name] = await outcome(f);
  assert.deepEqual(got, {
    'classify topk 0': 'BAD_INPUT',
    'classify options null': 'ok',
    'classify(null)': 'BAD_INPUT',
    'classifyTensor of a Uint8Array': 'BAD_INPUT',
    'classifyTensor options null': 'ok',
    'activation(42)': 'BAD_INPUT',
    'activation options null': 'ok',
    'channels [2**32]': 'BAD_INPUT',
    'channels [-1]': 'BAD_INPUT',
    'channels [0.5]': 'BAD_INPUT',
    'channels [1n]': 'BAD_INPUT',
    'channels a string': 'BAD_INPUT',
    'channels a Uint16Array': 'ok',
    'classActivationMap(NaN)': 'BAD_INPUT',
    'setInputSize(-1)': 'BAD_INPUT',
    'setInputSize(2**32 + 64)': 'INPUT_TOO_LARGE',
  });
  // Only the good calls reached the engine: channels as given, none wrapped.
  assert.deepEqual(
    seen.filter((s) => s[0] === 'activation'),
    [
      ['activation', undefined],
      ['activation', [1, 2]],
    ],
  );
});

test('crop refuses sizes a u32 cannot hold instead of wrapping them', () => {
  const { m } = standIn();
  assert.deepEqual(m.crop(640, 480), { x: 0, y: 0, width: 640, height: 480 });
  assert.throws(() => m.crop(2 ** 32 + 640, 480), { name: 'ResNetError', code: 'BAD_INPUT' });
  assert.throws(() => m.crop(640, 2 ** 32), { code: 'BAD_INPUT' });
  assert.deepEqual(m.crop(0xffffffff, 1), { x: 0, y: 0, width: 0xffffffff, height: 1 });
});

test('a queued call sees its ImageData or tensor as it was at the call', async () => {
  const { m, seen } = standIn();
  // One ImageData and one array, refilled between calls, as a capture loop would.
  const img = image(0);
  const x = tensor(0);
  const calls = [];
  for (const v of [10, 20, 30]) {
    img.data.fill(v);
    calls.push(m.classify(img));
    x.fill(v);
    calls.push(m.classifyTensor(x));
  }
  img.data.fill(99);
  x.fill(99);
  await Promise.all(calls);
  assert.deepEqual(seen, [
    ['pixels', 10],
    ['tensor', 10],
    ['pixels', 20],
    ['tensor', 20],
    ['pixels', 30],
    ['tensor', 30],
  ]);
});

test('transferred (detached) buffers are refused with BAD_INPUT', async () => {
  const { m, seen } = standIn();
  const why = /transferred \(detached/;
  await assert.rejects(m.classifyTensor(transferred(tensor(1))), { code: 'BAD_INPUT', message: why });
  const img = image(1);
  transferred(img.data);
  await assert.rejects(m.classify(img), { code: 'BAD_INPUT', message: why });
  for (const source of [transferred(new Uint8Array(8)).buffer, transferred(new Uint8Array(8)), transferred(new Float32Array(2))]) {
    await assert.rejects(openWeights(source), { code: 'BAD_INPUT', message: why });
  }
  assert.deepEqual(seen, []);
  // A buffer that is merely empty is not taken for a transferred one.
  assert.equal((await openWeights(new ArrayBuffer(0))).bytes.length, 0);
});
