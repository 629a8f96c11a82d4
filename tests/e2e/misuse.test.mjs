// The package under misuse: every bad argument, every call in the wrong
// state, absurd input sizes, huge and impossible frames, and bad downloads
// each get an Error with a stable `code` — and leave the model (and the
// Cache API) in a state that keeps working.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { launch, missingPrerequisite, recordConsole, startServer } from './helpers.mjs';

const missing = missingPrerequisite();
if (missing) throw new Error(missing);
const T = { timeout: 240000 };

/** Runs in the page: each case's error code (or 'ok'), by name, on `backend`. */
async function misuse(backend) {
  const api = await import('/js/index.js');
  const codes = {};
  const attempt = async (name, f) => {
    try {
      await f();
      codes[name] = 'ok';
    } catch (e) {
      codes[name] = e instanceof Error && e.name === 'ResNetError' ? e.code : `not a ResNetError: ${e}`;
    }
  };
  const bytes = await api.demoWeights();
  const canvas = (w, h) => {
    const c = document.createElement('canvas');
    c.width = w;
    c.height = h;
    const g = c.getContext('2d');
    g.fillStyle = '#8a4';
    g.fillRect(0, 0, w, h);
    g.fillStyle = '#24c';
    g.fillRect(w / 4, h / 4, w / 2, h / 2);
    return c;
  };
  // Loading.
  await attempt('inputSize 131072', () => api.ResNet.load(bytes, { inputSize: 131072 }));
  await attempt('inputSize 2**32+64', () => api.ResNet.load(bytes, { inputSize: 2 ** 32 + 64 }));
  await attempt('inputSize 20', () => api.ResNet.load(bytes, { inputSize: 20 }));
  await attempt('inputSize 64.5', () => api.ResNet.load(bytes, { inputSize: 64.5 }));
  await attempt('inputSize [64]', () => api.ResNet.load(bytes, { inputSize: [64] }));
  await attempt('mode x', () => api.ResNet.load(bytes, { mode: 'x' }));
  await attempt('garbage bytes', () => api.ResNet.load(new Uint8Array(10)));
  await attempt('a number as source', () => api.ResNet.load(42));
  await attempt('empty URL', () => api.ResNet.load(''));
  // A buffer handed to a Worker with postMessage(…, [buffer]) is empty here.
  const gone = (view) => (structuredClone(view.buffer, { transfer: [view.buffer] }), view);
  await attempt('a transferred ArrayBuffer, options null', () => api.ResNet.load(gone(bytes.slice()).buffer, null));
  const m = await api.ResNet.load(bytes, { inputSize: 64, mode: 'inspect', backend });
  // Before the first frame.
  await attempt('activation before a frame', () => m.activation('layer1.0'));
  await attempt('CAM before a frame', () => m.classActivationMap(1));
  await attempt('channelMeans before a frame', () => m.channelMeans('layer1.0'));
  await attempt('residuals before a frame', () => m.residuals());
  // Bad arguments.
  await attempt('classify(null)', () => m.classify(null));
  await attempt('classify({})', () => m.classify({}));
  await attempt('topk 0', () => m.classify(canvas(50, 40), { topk: 0 }));
  await attempt('classifyTensor of 5 values', () => m.classifyTensor(new Float32Array(5)));
  await attempt('a frame', () => m.classify(canvas(90, 70)));
  await attempt('a frame, options null', () => m.classify(canvas(90, 70), null));
  const emptied = new ImageData(50, 40);
  gone(emptied.data);
  await attempt('an ImageData whose buffer was transferred', () => m.classify(emptied));
  await attempt('a transferred Float32Array', () => m.classifyTensor(gone(new Float32Array(3 * 64 * 64))));
  // Promise-returning methods reject a bad argument; they never throw it.
  const threw = [];
  for (const [name, f] of Object.entries({
    'topk 0': () => m.classify(canvas(50, 40), { topk: 0 }),
    'classify(null)': () => m.classify(null),
    'a Uint8Array tensor': () => m.classifyTensor(new Uint8Array(3)),
    'activation(42)': () => m.activation(42),
    'CAM(NaN)': () => m.classActivationMap(NaN),
    'setInputSize(-1)': () => m.setInputSize(-1),
  })) {
    try {
      f().catch(() => {});
    } catch {
      threw.push(name);
    }
  }
  const closed = await createImageBitmap(canvas(50, 40));
  closed.close();
  await attempt('a closed ImageBitmap', () => m.classify(closed));
  // Frames whose size is known but whose picture is not there yet (or
  // never will be): the sizes and states are pinned on the instances.
  const pin = (el, props) => Object.entries(props).forEach(([k, value]) => Object.defineProperty(el, k, { value }));
  const messages = {};
  const message = async (name, f) => {
    await attempt(name, f);
    messages[name] = await f().catch((e) => e.message);
  };
  const loading = new Image();
  pin(loading, { naturalWidth: 50, naturalHeight: 40, complete: false });
  await message('an image still loading', () => m.classify(loading));
  const early = document.createElement('video');
  pin(early, { videoWidth: 64, videoHeight: 48, readyState: 1 });
  await message('a video with metadata but no frame', () => m.classify(early));
  const broken = new Image();
  await new Promise((resolve) => {
    broken.onerror = resolve;
    broken.src = 'data:image/png;base64,bm90IGFuIGltYWdl';
  });
  pin(broken, { naturalWidth: 50, naturalHeight: 40 });
  await message('a broken image', () => m.classify(broken));
  // Queued after a re-plan, a tensor of the new size runs (its size is
  // checked in its turn), and one of the old size is refused.
  const replanned = m.setInputSize(72);
  await attempt('a tensor of the size being planned', () => m.classifyTensor(new Float32Array(3 * 72 * 72)));
  await attempt('a tensor of the old size after a re-plan', () => m.classifyTensor(new Float32Array(3 * 64 * 64)));
  await replanned;
  await m.setInputSize(64);
  // A queued call sees its input as it was at the call: one canvas (one
  // array) changed between calls gives what each alone gives.
  const shared = canvas(90, 70);
  const paint = (colour) => {
    const g = shared.getContext('2d');
    g.fillStyle = colour;
    g.fillRect(0, 0, 90, 70);
    return shared;
  };
  const colours = ['#d22', '#2d2', '#22d'];
  const queued = await Promise.all(colours.map((c) => m.classify(paint(c))));
  const alone = [];
  for (const c of colours) alone.push(await m.classify(paint(c)));
  const x = new Float32Array(3 * 64 * 64);
  const levels = [-1, 0, 1];
  const queuedT = await Promise.all(levels.map((v) => m.classifyTensor(x.fill(v))));
  const aloneT = [];
  for (const v of levels) aloneT.push(await m.classifyTensor(x.fill(v)));
  const gap = (a, b) => Math.max(...a.logits.map((v, i) => Math.abs(v - b.logits[i])));
  const snapshots = {
    frames: Math.max(...queued.map((r, i) => gap(r, alone[i]))),
    tensors: Math.max(...queuedT.map((r, i) => gap(r, aloneT[i]))),
    spread: Math.min(gap(alone[0], alone[2]), gap(aloneT[0], aloneT[2])),
  };
  await m.classify(canvas(90, 70)); // a frame at the planned size again, for the reads below
  await attempt('CAM(NaN)', () => m.classActivationMap(NaN));
  await attempt('CAM(1e9)', () => m.classActivationMap(1e9));
  await attempt('channels: 5', () => m.activation('layer1.0', { channels: 5 }));
  await attempt('channels: [-1]', () => m.activation('layer1.0', { channels: [-1] }));
  await attempt('channels: [2**32]', () => m.activation('layer1.0', { channels: [2 ** 32] }));
  await attempt('channels: a Uint32Array', () => m.activation('layer1.0', { channels: Uint32Array.of(0, 1) }));
  await attempt('channel past the last', () => m.activation('layer1.0', { channels: [999] }));
  await attempt('activation(42)', () => m.activation(42));
  await attempt('activation of no such tensor', () => m.activation('nope'));
  await attempt('skip a convolutional block', () => m.setBlockEnabled('layer2.0', false));
  await attempt('skip no such block', () => m.setBlockEnabled('nope', false));
  await attempt('skip with a string', () => m.setBlockEnabled('layer1.1', 'no'));
  await attempt('setInputSize 131072', () => m.setInputSize(131072));
  await attempt('crop(0, 5)', () => m.crop(0, 5));
  await attempt('crop(2**32 + 640, 480)', () => m.crop(2 ** 32 + 640, 480));
  // Frames: a huge canvas is scaled down before it reaches wasm memory; one
  // the engine cannot take fails alone and the model goes on.
  const before = api.wasmMemoryBytes();
  await attempt('an 8000×8000 canvas', () => m.classify(canvas(8000, 8000)));
  const afterHuge = api.wasmMemoryBytes();
  await attempt('a 70000×240 frame', () => m.classify(new ImageData(70000, 240)));
  await attempt('a frame after the failed one', () => m.classify(canvas(90, 70)));
  await attempt('activation after the failed one', () => m.activation('layer1.0', { channels: [0] }));
  m.dispose();
  // After dispose: every method.
  for (const [name, f] of Object.entries({
    blocks: () => m.blocks(),
    channelMeans: () => m.channelMeans('layer1.0'),
    residuals: () => m.residuals(),
    setBlockEnabled: () => m.setBlockEnabled('layer1.1', false),
    blockEnabled: () => m.blockEnabled('layer1.1'),
    timings: () => m.timings(),
    crop: () => m.crop(10, 10),
    classify: () => m.classify(canvas(50, 40)),
    classifyTensor: () => m.classifyTensor(new Float32Array(3 * 64 * 64)),
    activation: () => m.activation('layer1.0'),
    classActivationMap: () => m.classActivationMap(1),
    setInputSize: () => m.setInputSize(64),
  })) {
    await attempt(`${name} after dispose`, f);
  }
  return { codes, messages, memory: { before, afterHuge }, threw, snapshots };
}

/** Runs in the page: what the Cache API keeps after each kind of download. */
async function downloads({ slowUrl }) {
  const api = await import('/js/index.js');
  const base = `${location.origin}/fake`;
  const cache = await caches.open('resnet-weights');
  const code = async (f) => {
    try {
      await f();
      return 'ok';
    } catch (e) {
      return e.code ?? String(e);
    }
  };
  const r = {};
  r.portal = await code(() => api.ResNet.load(`${base}/portal.safetensors`, { inputSize: 64 }));
  r.portalCached = !!(await cache.match(`${base}/portal.safetensors`));
  r.cut = await code(() => api.ResNet.load(slowUrl, { inputSize: 64 }));
  r.cutCached = !!(await cache.match(slowUrl));
  // A server that sends a little and then nothing, holding the connection open.
  const stallUrl = slowUrl.replace('/w.safetensors', '/stall.safetensors');
  const t0 = performance.now();
  r.stall = await code(() => api.ResNet.load(stallUrl, { inputSize: 64, stallTimeout: 400 }));
  r.stallFailedSoon = performance.now() - t0 < 20000;
  r.stallMessage = await api.ResNet.load(stallUrl, { stallTimeout: 300 }).catch((e) => /stalled: no data for 0.3 s/.test(e.message));
  r.badStallTimeout = await code(() => api.ResNet.load(stallUrl, { stallTimeout: -1 }));
  r.good = await code(async () => (await api.ResNet.load(`${base}/good.safetensors`, { inputSize: 64 })).dispose());
  r.goodCached = !!(await cache.match(`${base}/good.safetensors`));
  // A cached copy that does not parse is evicted, and the weights fetched once more.
  await cache.put(`${base}/stale.safetensors`, new Response('<html>captive portal</html>'));
  r.stale = await code(async () => (await api.ResNet.load(`${base}/stale.safetensors`, { inputSize: 64 })).dispose());
  const again = await cache.match(`${base}/stale.safetensors`);
  r.staleRefreshed = again ? (await again.arrayBuffer()).byteLength : 0;
  r.demoLength = (await api.demoWeights()).length;
  r.cleared = await api.clearWeightsCache();
  r.cacheAfterClear = await caches.has('resnet-weights');
  return r;
}

describe('the package under misuse', () => {
  let server;
  let browser;
  let slow;

  before(async () => {
    server = await startServer();
    browser = await launch();
    // Announces 4 MB of weights, sends 100 bytes, and hangs up.
    // /stall…: the same, but keeps the connection open and silent.
    slow = http.createServer((req, res) => {
      res.writeHead(200, { 'content-length': String(4 << 20), 'access-control-allow-origin': '*' });
      res.write(Buffer.alloc(100, 7));
      if (!req.url.startsWith('/stall')) setTimeout(() => res.socket.destroy(), 50);
    });
    await new Promise((resolve) => slow.listen(0, '127.0.0.1', resolve));
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    slow?.closeAllConnections();
    slow?.close();
  });

  for (const backend of ['webgpu', 'cpu']) it(`gives every misuse an Error with a stable code and keeps working (${backend})`, T, async () => {
    const page = await browser.newPage();
    const log = recordConsole(page);
    await page.goto(`${server.url}/js/index.d.ts`);
    const { codes, messages, memory, threw, snapshots } = await page.evaluate(misuse, backend).catch((e) => assert.fail(`${e.message}\n${log.join('\n')}`));
    const want = {
      'inputSize 131072': 'INPUT_TOO_LARGE',
      'inputSize 2**32+64': 'INPUT_TOO_LARGE',
      'inputSize 20': 'BAD_INPUT',
      'inputSize 64.5': 'BAD_INPUT',
      'inputSize [64]': 'BAD_INPUT',
      'mode x': 'BAD_INPUT',
      'garbage bytes': 'BAD_WEIGHTS',
      'a number as source': 'BAD_INPUT',
      'empty URL': 'BAD_INPUT',
      'a transferred ArrayBuffer, options null': 'BAD_INPUT',
      'activation before a frame': 'NO_FRAME',
      'CAM before a frame': 'NO_FRAME',
      'channelMeans before a frame': 'NO_FRAME',
      'residuals before a frame': 'NO_FRAME',
      'classify(null)': 'BAD_INPUT',
      'classify({})': 'BAD_INPUT',
      'topk 0': 'BAD_INPUT',
      'classifyTensor of 5 values': 'BAD_INPUT',
      'a frame': 'ok',
      'a frame, options null': 'ok',
      'an ImageData whose buffer was transferred': 'BAD_INPUT',
      'a transferred Float32Array': 'BAD_INPUT',
      'a closed ImageBitmap': 'BAD_INPUT',
      'an image still loading': 'BAD_INPUT',
      'a video with metadata but no frame': 'BAD_INPUT',
      'a broken image': 'BAD_INPUT',
      'a tensor of the size being planned': 'ok',
      'a tensor of the old size after a re-plan': 'BAD_INPUT',
      'CAM(NaN)': 'BAD_INPUT',
      'CAM(1e9)': 'BAD_INPUT',
      'channels: 5': 'BAD_INPUT',
      'channels: [-1]': 'BAD_INPUT',
      'channels: [2**32]': 'BAD_INPUT',
      'channels: a Uint32Array': 'ok',
      'channel past the last': 'BAD_INPUT',
      'activation(42)': 'BAD_INPUT',
      'activation of no such tensor': 'BAD_INPUT',
      'skip a convolutional block': 'BAD_INPUT',
      'skip no such block': 'BAD_INPUT',
      'skip with a string': 'BAD_INPUT',
      'setInputSize 131072': 'INPUT_TOO_LARGE',
      'crop(0, 5)': 'BAD_INPUT',
      'crop(2**32 + 640, 480)': 'BAD_INPUT',
      'an 8000×8000 canvas': 'ok',
      'a 70000×240 frame': 'INPUT_TOO_LARGE',
      'a frame after the failed one': 'ok',
      'activation after the failed one': 'ok',
    };
    for (const name of ['blocks', 'channelMeans', 'residuals', 'setBlockEnabled', 'blockEnabled', 'timings', 'crop', 'classify', 'classifyTensor', 'activation', 'classActivationMap', 'setInputSize']) {
      want[`${name} after dispose`] = 'DISPOSED';
    }
    assert.deepEqual(codes, want);
    // Each refused for its own reason, not as a frame without pixels.
    assert.match(messages['an image still loading'], /still loading/);
    assert.match(messages['a video with metadata but no frame'], /no frame to show yet/);
    assert.match(messages['a broken image'], /cannot be drawn/);
    assert.deepEqual(threw, [], 'bad arguments reject the promise instead of throwing');
    // Queued calls on one canvas (one array) redrawn between them: each as classified alone, and they differ.
    assert.ok(snapshots.frames < 1e-4 && snapshots.tensors < 1e-4, JSON.stringify(snapshots));
    assert.ok(snapshots.spread > 1e-3, `the inputs hardly differ: ${JSON.stringify(snapshots)}`);
    // The 8000² canvas (256 MB of pixels) reached wasm scaled down: memory grew by at most a few MB.
    assert.ok(memory.afterHuge - memory.before <= 8 << 20, `wasm memory grew by ${(memory.afterHuge - memory.before) >> 20} MB`);
    await page.close();
  });

  it('caches only downloads that parsed, and replaces a cached copy that does not', T, async () => {
    const page = await browser.newPage();
    const log = recordConsole(page);
    await page.goto(`${server.url}/js/index.d.ts`);
    const demo = Buffer.from(await page.evaluate(async () => Array.from(await (await import('/js/index.js')).demoWeights())));
    await page.route('**/fake/portal.safetensors', (r) => r.fulfill({ status: 200, contentType: 'text/html', body: '<html>Sign in to the Wi-Fi</html>' }));
    await page.route('**/fake/good.safetensors', (r) => r.fulfill({ status: 200, body: demo }));
    await page.route('**/fake/stale.safetensors', (r) => r.fulfill({ status: 200, body: demo }));
    const slowUrl = `http://127.0.0.1:${slow.address().port}/w.safetensors`;
    const r = await page.evaluate(downloads, { slowUrl }).catch((e) => assert.fail(`${e.message}\n${log.join('\n')}`));
    assert.deepEqual(r, {
      portal: 'BAD_WEIGHTS',
      portalCached: false,
      cut: 'DOWNLOAD_FAILED',
      cutCached: false,
      stall: 'DOWNLOAD_FAILED',
      stallFailedSoon: true,
      stallMessage: true,
      badStallTimeout: 'BAD_INPUT',
      good: 'ok',
      goodCached: true,
      stale: 'ok',
      staleRefreshed: r.demoLength,
      demoLength: r.demoLength,
      cleared: true,
      cacheAfterClear: false,
    });
    await page.close();
  });
});
