// Training in the browser through the npm package: a trainer on the demo
// network learns two colours from canvases on each backend (the model on
// WebGPU or wasm, the training passes on WebGPU's kernels or wasm), the GPU
// and CPU trainers agree step by step, the model then answers with the new class
// names, the exported weights load back to the same logits, an AbortSignal
// stops a fit, the memory cap refuses clearly, and the same runs in a
// module Worker.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { inWorker, launch, missingPrerequisite, recordConsole, startServer } from './helpers.mjs';

const missing = missingPrerequisite();
if (missing) throw new Error(missing);

/** Runs in the page (or a Worker): the whole training story on one backend. */
async function story([backend, trainerBackend]) {
  // An absolute URL: a Worker made from a blob: URL resolves nothing relative.
  const api = await import(new URL('/js/index.js', globalThis.origin).href);
  // A frame of one colour with seeded noise: an OffscreenCanvas works on the main thread and in a Worker.
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const frame = (r, g, b) => {
    const c = new OffscreenCanvas(80, 60);
    const ctx = c.getContext('2d');
    const img = ctx.createImageData(80, 60);
    for (let i = 0; i < img.data.length; i += 4) {
      img.data[i] = r + 60 * (rand() - 0.5);
      img.data[i + 1] = g + 60 * (rand() - 0.5);
      img.data[i + 2] = b + 60 * (rand() - 0.5);
      img.data[i + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    return c;
  };
  const out = {};
  const m = await api.ResNet.load(await api.demoWeights(), { inputSize: 64, backend });
  out.backend = m.info.backend;
  const t = await m.trainer({ classes: ['red', 'blue'], learningRate: 0.05, seed: 3, backend: trainerBackend });
  out.trainerBackend = t.backend;
  for (let i = 0; i < 4; i++) {
    await t.add(frame(200, 40, 40), 0);
    await t.add(frame(40, 40, 200), 1);
  }
  out.count = t.count();
  const steps = [];
  const history = await t.fit({ epochs: 25, batchSize: 8, onStep: (s) => steps.push(s.step) });
  out.steps = steps.length;
  out.lastAccuracy = history.at(-1).accuracy;
  out.lossFell = history.at(-1).loss < history[0].loss;
  out.norms = t.gradientNorms().filter((n) => n.weights !== null).map((n) => n.name);
  const red = frame(200, 40, 40);
  const a = await m.classify(red, { topk: 2 });
  out.top = a.top.map((x) => x.label);
  out.classes = m.info.classes;
  // Exported weights load back with their class names and give the same logits.
  const bytes = await m.exportWeights();
  const m2 = await api.ResNet.load(bytes, { inputSize: 64, backend });
  const b = await m2.classify(red, { topk: 2 });
  out.sameLogits = Array.from(a.logits).every((v, i) => Math.abs(v - b.logits[i]) <= 1e-4 * (1 + Math.abs(v)));
  out.reloadedTop = b.top.map((x) => x.label);
  // dispose() ends a fit in progress.
  const gone = await m.trainer({ classes: ['red', 'blue'], seed: 9 });
  out.autoBackend = gone.backend;
  await gone.add(frame(200, 40, 40), 0);
  await gone.add(frame(40, 40, 200), 1);
  out.disposedFit = await gone.fit({ epochs: 1000, batchSize: 1, onStep: (s) => s.step === 2 && gone.dispose() }).then(() => 'finished', (e) => e.code);
  // An abort stops a fit between steps.
  const ctrl = new AbortController();
  let abortedAt = 0;
  try {
    await t.fit({ epochs: 50, batchSize: 2, signal: ctrl.signal, onStep: (s) => s.step === 3 && ctrl.abort() && 0 });
  } catch (e) {
    abortedAt = e.name;
  }
  out.aborted = abortedAt;
  // The memory cap: every example of a whole-network trainer kept raw, 1 MB allowed.
  const small = await m.trainer({ classes: ['x', 'y'], train: 'all', memoryLimitMB: 1 });
  try {
    for (let i = 0; i < 40; i++) await small.addTensor(new Float32Array(3 * 64 * 64), i % 2);
    out.cap = 'no error';
  } catch (e) {
    out.cap = e.code;
  }
  // Augmented: frames kept whole, drawn afresh each epoch.
  const aug = await m.trainer({ classes: ['red', 'blue'], augment: true, learningRate: 0.05, seed: 5, backend: trainerBackend });
  for (let i = 0; i < 3; i++) {
    await aug.add(frame(200, 40, 40), 0);
    await aug.add(frame(40, 40, 200), 1);
  }
  out.augmented = (await aug.fit({ epochs: 4, batchSize: 6 })).length;
  aug.dispose();
  // Bad arguments reject with BAD_INPUT.
  out.bad = await t.add(red, 5).then(() => 'ok', (e) => e.code);
  out.badOption = await m.trainer({ classes: ['a'] }).then(() => 'ok', (e) => e.code);
  t.dispose();
  small.dispose();
  m.dispose();
  m2.dispose();
  return out;
}

function checkStory(out, [backend, trainerBackend]) {
  assert.equal(out.backend, backend);
  assert.equal(out.trainerBackend, trainerBackend);
  // 'auto' leaves a software adapter (SwiftShader here) to the CPU backend.
  assert.equal(out.autoBackend, 'cpu');
  assert.equal(out.count, 8);
  assert.equal(out.steps, 25);
  assert.equal(out.lastAccuracy, 1, 'trains to 100% on two colours');
  assert.ok(out.lossFell);
  assert.deepEqual(out.norms, ['pool'], 'head training: only the head has weight gradients');
  assert.deepEqual(out.top, ['red', 'blue']);
  assert.equal(out.classes, 2);
  assert.ok(out.sameLogits, 'exported weights give the same logits');
  assert.deepEqual(out.reloadedTop, ['red', 'blue'], 'the class names travel in the file');
  assert.equal(out.disposedFit, 'DISPOSED');
  assert.equal(out.aborted, 'AbortError');
  assert.equal(out.cap, 'INPUT_TOO_LARGE');
  assert.equal(out.augmented, 4);
  assert.equal(out.bad, 'BAD_INPUT');
  assert.equal(out.badOption, 'BAD_INPUT');
}

describe('training in the browser', () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer();
    browser = await launch();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  for (const backends of [['webgpu', 'webgpu'], ['cpu', 'cpu']]) {
    it(`trains new classes on the main thread (model on ${backends[0]}, training on ${backends[1]})`, { timeout: 300000 }, async () => {
      const page = await browser.newPage();
      const log = recordConsole(page);
      await page.goto(`${server.url}/js/index.d.ts`);
      const out = await page.evaluate(story, backends).catch((e) => assert.fail(`${e.message}\n${log.join('\n')}`));
      checkStory(out, backends);
      await page.close();
    });
  }

  it('trains the whole network on WebGPU as on the CPU backend, step by step', { timeout: 300000 }, async () => {
    const page = await browser.newPage();
    const log = recordConsole(page);
    await page.goto(`${server.url}/js/index.d.ts`);
    const out = await page
      .evaluate(async () => {
        const api = await import('/js/index.js');
        const runs = {};
        for (const backend of ['webgpu', 'cpu']) {
          // A model each: after a fit, a model keeps the trained weights (and the next trainer starts there).
          const m = await api.ResNet.load(await api.demoWeights(), { inputSize: 40, backend: 'webgpu' });
          const t = await m.trainer({ classes: ['a', 'b'], train: 'all', bn: 'batch', optimizer: 'sgd', learningRate: 0.01, seed: 4, backend });
          let s = 11;
          for (let i = 0; i < 6; i++) {
            const x = new Float32Array(3 * 40 * 40).map(() => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1);
            await t.addTensor(x, i % 2);
          }
          const losses = [];
          await t.fit({ epochs: 2, batchSize: 3, onStep: (st) => losses.push(st.loss) });
          runs[backend] = { backend: t.backend, losses, norms: t.gradientNorms().map((n) => n.input) };
          t.dispose();
          m.dispose();
        }
        return runs;
      })
      .catch((e) => assert.fail(`${e.message}\n${log.join('\n')}`));
    assert.equal(out.webgpu.backend, 'webgpu');
    assert.equal(out.cpu.backend, 'cpu');
    assert.equal(out.webgpu.losses.length, 4);
    out.cpu.losses.forEach((l, i) => assert.ok(Math.abs(l - out.webgpu.losses[i]) <= 1e-4 * Math.max(1, l), `losses ${out.webgpu.losses} against ${out.cpu.losses}`));
    out.cpu.norms.forEach((n, i) => assert.ok((n === null) === (out.webgpu.norms[i] === null) && (n === null || Math.abs(n - out.webgpu.norms[i]) <= 1e-3 * n + 1e-9), `input gradient norms ${out.webgpu.norms} against ${out.cpu.norms}`));
    await page.close();
  });

  it('trains in a module Worker', { timeout: 300000 }, async () => {
    const page = await browser.newPage();
    const log = recordConsole(page);
    await page.goto(`${server.url}/js/index.d.ts`);
    const out = await inWorker(page, story, ['cpu', 'cpu']).catch((e) => assert.fail(`${e.message}\n${log.join('\n')}`));
    assert.ok(out.ok, out.error);
    checkStory(out.ok, ['cpu', 'cpu']);
    await page.close();
  });
});
