// The residual experiment in Chromium: the package's `experiment()` on
// WebGPU (SwiftShader) and the CPU backend (records of both networks, the
// same first losses on both backends, bad descriptions refused), and the
// page's card: a short run draws both curves and both heatmaps, Stop stops
// it, the page keeps responding (the training runs in a worker), and memory
// stays flat over repeated runs.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, missingPrerequisite, recordConsole, startServer } from './helpers.mjs';

const missing = missingPrerequisite();
if (missing) throw new Error(missing);

describe('the residual experiment', () => {
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

  it('trains both networks through the package on WebGPU and the CPU backend, alike', { timeout: 300000 }, async () => {
    const page = await browser.newPage();
    const log = recordConsole(page);
    await page.goto(`${server.url}/js/index.d.ts`);
    const r = await page.evaluate(async () => {
      const api = await import('/js/index.js');
      const out = {};
      for (const backend of ['webgpu', 'cpu']) {
        const ex = await api.experiment({ depth: 8, trainExamples: 96, epochs: 1, batchSize: 32, evalEvery: 2, backend });
        const h = await ex.run();
        // The trained plain network loads back as itself and classifies (at 32×32: ResNet.load's smallest input).
        const m = await api.ResNet.load(ex.exportWeights('plain'), { inputSize: 32, backend });
        const img = new ImageData(32, 32);
        for (let i = 0; i < img.data.length; i++) img.data[i] = (i * 37) % 256;
        const c = await m.classify(img);
        const loaded = { kinds: m.blocks().map((b) => b.kind), top: c.top.length, residuals: m.residuals().length };
        m.dispose();
        out[backend] = { backend: ex.backend, blocks: ex.blocks, steps: ex.steps, h, loaded };
        ex.dispose();
      }
      const code = async (o) => {
        try {
          await api.experiment(o);
          return 'no error';
        } catch (e) {
          return `${e.code}: ${e.message}`;
        }
      };
      out.errors = [await code({ depth: 21 }), await code({ widths: [16, 0, 64] }), await code({ deep: 8 }), await code({ init: 'xavier' }), await code({ depth: 8, dataset: new Uint8Array([1, 2, 3]) })];
      return out;
    });
    assert.deepEqual(log.filter((l) => l.startsWith('pageerror')), []);
    for (const backend of ['webgpu', 'cpu']) {
      const o = r[backend];
      assert.equal(o.backend, backend);
      assert.deepEqual(o.blocks, ['layer1.0', 'layer2.0', 'layer3.0']);
      assert.equal(o.steps, 3);
      assert.equal(o.h.residual.length, 3);
      assert.equal(o.h.plain.length, 3);
      const first = o.h.residual[0];
      assert.ok(first.loss > 1 && first.loss < 4, `${backend}: loss ${first.loss}`);
      assert.ok(first.gradNorms.slice(1).every((g) => g > 0), JSON.stringify(first.gradNorms));
      assert.ok(first.ratios.every((v) => v > 0), JSON.stringify(first.ratios));
      assert.ok(o.h.plain[0].ratios.every((v) => v === null));
      assert.deepEqual(o.h.residual.map((s) => s.testAccuracy !== null), [false, true, true]);
      assert.deepEqual(o.loaded.kinds, ['stem', 'plain', 'plain', 'plain', 'head'], JSON.stringify(o.loaded));
      assert.equal(o.loaded.top, 5);
    }
    // The same seeded networks and batches: the same losses on both backends.
    for (const arm of ['residual', 'plain']) {
      r.webgpu.h[arm].forEach((s, i) => {
        const c = r.cpu.h[arm][i];
        assert.ok(Math.abs(s.loss - c.loss) <= 1e-3 * Math.abs(c.loss), `${arm} step ${i + 1}: ${s.loss} vs ${c.loss}`);
      });
    }
    assert.match(r.errors[0], /^BAD_INPUT: .*6n\+2/);
    assert.match(r.errors[1], /^BAD_INPUT: .*width 0/);
    assert.match(r.errors[2], /^BAD_INPUT: unknown experiment option 'deep'/);
    assert.match(r.errors[3], /^BAD_INPUT: init must be/);
    assert.match(r.errors[4], /^BAD_INPUT: not a dataset file/);
    await page.close();
  });

  it("trains on Teach mode's recordings in the page", { timeout: 240000 }, async () => {
    const page = await browser.newPage();
    const log = recordConsole(page);
    await page.goto(`${server.url}/www/index.html?model=demo&size=64`);
    await page.waitForFunction(() => window.__experiment && window.__teach && window.__resnet?.model, null, { timeout: 120000 });
    // Two classes of six recordings each (reddish and bluish frames), as Teach mode keeps them.
    await page.evaluate(() => {
      const c = document.createElement('canvas');
      c.width = 48;
      c.height = 40;
      const g = c.getContext('2d');
      const shots = (hue) =>
        Array.from({ length: 6 }, (_, i) => {
          g.fillStyle = `hsl(${hue + i * 4}, 70%, 50%)`;
          g.fillRect(0, 0, 48, 40);
          g.fillStyle = '#fff';
          g.fillRect(4 + i * 3, 10, 12, 12);
          return { id: 1000 + hue + i, url: c.toDataURL('image/png') };
        });
      window.__teach.classes = [{ id: 900, name: 'red', examples: shots(0) }, { id: 901, name: 'blue', examples: shots(220) }];
    });
    await page.selectOption('#exp-data', 'recordings');
    await page.selectOption('#exp-depth', '8');
    await page.selectOption('#exp-backend', 'cpu');
    await page.fill('#exp-epochs', '3');
    await page.click('#exp-run');
    await page.waitForFunction(() => window.__experiment.runs >= 1, null, { timeout: 200000, polling: 200 });
    const s = await page.evaluate(() => ({ ...window.__experiment, history: window.__experiment.history.residual }));
    assert.equal(s.error, null);
    assert.equal(s.done, true);
    assert.match(s.dataset, /your recordings: 2 classes, 10 to train, 2 to test, at 32×32/);
    // One full batch of 10 an epoch.
    assert.equal(s.history.length, 3);
    assert.ok(s.history.at(-1).testAccuracy !== null);
    // Too few recordings: said, nothing run.
    await page.evaluate(() => (window.__teach.classes[1].examples.length = 1));
    await page.click('#exp-run');
    await page.waitForFunction(() => /two or more recordings/.test(document.querySelector('#exp-message').textContent), null, { timeout: 10000 });
    assert.deepEqual(log.filter((l) => l.startsWith('pageerror')), []);
    await page.close();
  });

  for (const backend of ['webgpu', 'cpu']) {
    it(`runs in the page on ${backend}: both curves, both heatmaps, Stop, memory flat over repeated runs`, { timeout: 480000 }, async () => {
      const page = await browser.newPage({ viewport: { width: 1300, height: 900 } });
      const log = recordConsole(page);
      await page.goto(`${server.url}/www/index.html?model=demo&size=64`);
      await page.waitForFunction(() => window.__experiment && window.__resnet?.model, null, { timeout: 120000 });
      await page.selectOption('#exp-depth', '8');
      await page.selectOption('#exp-backend', backend);
      const runOnce = async (steps) => {
        const runs = await page.evaluate(() => window.__experiment.runs);
        await page.click('#exp-run');
        await page.waitForFunction((n) => window.__experiment.history.residual.length >= n || window.__experiment.error, steps, { timeout: 240000, polling: 100 });
        await page.click('#exp-stop');
        await page.waitForFunction((r) => window.__experiment.runs > r, runs, { timeout: 60000 });
        return page.evaluate(() => ({ ...window.__experiment, history: { residual: window.__experiment.history.residual.length, plain: window.__experiment.history.plain.length } }));
      };
      // The page's own thread keeps ticking while the worker trains.
      await page.evaluate(() => {
        window.__gaps = [];
        let t = performance.now();
        window.__ticker = setInterval(() => {
          const n = performance.now();
          window.__gaps.push(n - t);
          t = n;
        }, 20);
      });
      const s = await runOnce(11);
      const worstGap = await page.evaluate(() => {
        clearInterval(window.__ticker);
        return Math.max(...window.__gaps);
      });
      assert.ok(worstGap < 1000, `the page stalled for ${worstGap.toFixed(0)} ms while training`);
      assert.equal(s.error, null);
      assert.equal(s.backend, backend);
      assert.ok(s.history.residual >= 11 && s.history.plain >= s.history.residual - 1, JSON.stringify(s.history));
      assert.match(await page.textContent('#exp-message'), /Stopped after \d+ steps\. ResNet-8: loss/);
      // Every chart drawn: the two networks' colours in the loss and accuracy charts, colour in both heatmaps.
      const drawn = await page.evaluate(() => {
        const count = (id, test) => {
          const c = document.getElementById(id);
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let n = 0;
          for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 200 && test(d[i], d[i + 1], d[i + 2])) n++;
          return n;
        };
        const red = (r, g, b) => r > 200 && g < 120 && b < 80;
        const blue = (r, g, b) => b > 200 && r < 100;
        const vivid = (r, g, b) => Math.max(r, g, b) - Math.min(r, g, b) > 60;
        return {
          lossRed: count('exp-loss', red), lossBlue: count('exp-loss', blue), accRed: count('exp-acc', red), accBlue: count('exp-acc', blue),
          heatRes: count('exp-heat-res', vivid), heatPlain: count('exp-heat-plain', vivid), ratios: count('exp-ratios', vivid),
          table: document.querySelectorAll('#exp-summary tbody tr').length,
        };
      });
      for (const [k, v] of Object.entries(drawn)) assert.ok(v > (k === 'table' ? 1 : 20), `${k}: ${v} ${JSON.stringify(drawn)}`);
      // Repeated runs: wasm memory stops growing, the JS heap does not pile up.
      // The worker's wasm memory after each run, and the page's JS heap.
      const mem = async () => page.evaluate(async () => {
        for (let k = 0; k < 3; k++) {
          globalThis.gc?.();
          await new Promise((r) => setTimeout(r, 100));
        }
        return { wasm: window.__experiment.memory, heap: performance.memory.usedJSHeapSize };
      });
      await runOnce(3);
      const m1 = await mem();
      for (let i = 0; i < 3; i++) await runOnce(3);
      const m2 = await mem();
      assert.ok(m1.wasm > 1 << 20, `the worker reports its memory: ${m1.wasm}`);
      console.log(`[experiment page ${backend}] ${s.history.residual} steps in ${s.seconds.toFixed(1)} s, the page's longest stall ${worstGap.toFixed(0)} ms; worker wasm ${m1.wasm} -> ${m2.wasm} B, heap ${m1.heap} -> ${m2.heap} B`);
      assert.equal(m2.wasm, m1.wasm, 'wasm memory grew over repeated runs');
      assert.ok(m2.heap - m1.heap < 4 << 20, `JS heap grew by ${m2.heap - m1.heap} B`);
      assert.deepEqual(log.filter((l) => l.startsWith('pageerror')), []);
      await page.close();
    });
  }
});
