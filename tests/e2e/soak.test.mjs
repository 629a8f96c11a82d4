// A soak: hundreds of frames through the package at a small input size,
// with activations, class activation maps and statistics read as the page
// reads them. After warm-up, wasm memory must not grow at all and the JS heap
// (after a forced collection) by at most HEAP_BOUND: a frame allocates
// nothing in wasm, and nothing accumulates in JS.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, missingPrerequisite, recordConsole, startServer } from './helpers.mjs';

const missing = missingPrerequisite();
if (missing) throw new Error(missing);
const FRAMES = 300;
const WARMUP = 50;
const HEAP_BOUND = 1 << 20; // bytes of JS heap growth allowed over the measured frames

async function soak({ frames, warmup, backend }) {
  const api = await import('/js/index.js');
  const m = await api.ResNet.load(await api.demoWeights(), { inputSize: 64, backend });
  const c = document.createElement('canvas');
  c.width = 160;
  c.height = 120;
  const g = c.getContext('2d');
  const names = m.blocks().map((b) => b.name);
  // Idle a little between collections: V8 frees array buffers (each frame's
  // ImageData) lazily, after the task that dropped them.
  const sample = async () => {
    for (let k = 0; k < 3; k++) {
      globalThis.gc?.();
      await new Promise((r) => setTimeout(r, 100));
    }
    return { wasm: api.wasmMemoryBytes(), heap: performance.memory.usedJSHeapSize };
  };
  let start = null;
  for (let i = 0; i < frames; i++) {
    // A moving square, so every frame differs.
    g.fillStyle = `hsl(${i * 7}, 60%, 50%)`;
    g.fillRect(0, 0, 160, 120);
    g.fillStyle = '#fff';
    g.fillRect((i * 3) % 120, 30, 40, 40);
    const r = await m.classify(c);
    m.residuals();
    m.timings();
    const name = names[i % (names.length - 1)];
    const means = m.channelMeans(name);
    await m.activation(name, { channels: api.topIndices(means, 4) });
    if (i % 10 === 0) await m.classActivationMap(r.top[0].index);
    if (i === warmup) start = await sample();
  }
  const end = await sample();
  m.dispose();
  return { start, end };
}

describe('a soak of the package', () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer();
    browser = await launch({ extraArgs: ['--js-flags=--expose-gc', '--enable-precise-memory-info'] });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  for (const backend of ['webgpu', 'cpu']) it(`keeps wasm memory flat and the JS heap within ${HEAP_BOUND >> 10} KB over ${FRAMES} frames (${backend})`, { timeout: 600000 }, async () => {
    const page = await browser.newPage();
    const log = recordConsole(page);
    await page.goto(`${server.url}/js/index.d.ts`);
    const { start, end } = await page.evaluate(soak, { frames: FRAMES, warmup: WARMUP, backend }).catch((e) => assert.fail(`${e.message}\n${log.join('\n')}`));
    console.log(`soak (${backend}): wasm ${start.wasm} → ${end.wasm} bytes; JS heap ${start.heap} → ${end.heap} bytes over ${FRAMES - WARMUP} frames`);
    assert.equal(end.wasm, start.wasm, 'wasm memory grew after warm-up');
    assert.ok(end.heap - start.heap <= HEAP_BOUND, `the JS heap grew by ${end.heap - start.heap} bytes`);
    await page.close();
  });
});
