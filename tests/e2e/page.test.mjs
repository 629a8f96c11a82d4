// End-to-end tests of the page (www/) in headless Chromium with WebGPU
// (SwiftShader: slow, so the demo weights at a small input size).
//
//   npm run test:e2e
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  ROOT,
  launch,
  missingPrerequisite,
  recordConsole,
  settled,
  startServer,
  tmpDir,
  waitSettled,
  writeDemoWeights,
  writeY4m,
} from './helpers.mjs';

const SIZE = 96; // network input for the tests: SwiftShader runs ~0.5 GFLOP/s
const PAGE = `/www/?model=demo&size=${SIZE}`;
const T = { timeout: 240000 };
// A missing prerequisite fails the run (tools/test.sh builds them all first);
// nothing is skipped silently.
const missing =
  missingPrerequisite() ??
  (fs.existsSync(path.join(ROOT, 'www/samples/coffee.png')) ? null : 'www/samples/ missing: run tools/fetch_samples.sh');
if (missing) throw new Error(missing);

describe('the page', () => {
  let server;
  let browser; // with a fake webcam playing a .y4m clip
  let cpuBrowser; // without WebGPU: the page runs on the CPU backend
  let work;

  before(async () => {
    work = tmpDir();
    server = await startServer();
    browser = await launch({ camera: writeY4m(path.join(work, 'webcam.y4m')) });
    cpuBrowser = await launch({ webgpu: false });
  });

  after(async () => {
    await browser?.close();
    await cpuBrowser?.close();
    await server?.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  /** A fresh page with the demo model loaded. */
  async function openPage(b = browser, url = PAGE) {
    const context = await b.newContext({ viewport: { width: 1300, height: 900 } });
    const page = await context.newPage();
    const log = recordConsole(page);
    await page.goto(server.url + url);
    await page
      .waitForFunction(() => window.__resnet?.loads >= 1 || document.querySelector('#error')?.textContent, null, { timeout: 120000 })
      .catch(() => {});
    const err = await page.textContent('#error');
    assert.equal(err, '', `the page shows an error: ${err}\n${log.join('\n')}`);
    assert.ok(await page.evaluate(() => window.__resnet.loads >= 1), `the demo model did not load\n${log.join('\n')}`);
    return { page, context, log };
  }

  async function classifySample(page, name) {
    const before = await settled(page);
    await page.click(`.sample[data-src$="/${name}"]`);
    await waitSettled(page, before);
  }

  // The same checks on WebGPU and, in a browser without it, on the CPU backend.
  for (const [on, b, backend] of [['', () => browser, 'webgpu'], [' (CPU backend, no WebGPU)', () => cpuBrowser, 'cpu']]) {
    const expectBackend = async (page) => {
      assert.equal(await page.evaluate(() => window.__resnet.model.info.backend), backend);
      assert.match(await page.textContent('#backend-info'), backend === 'cpu' ? /CPU .*(no WebGPU|no GPU adapter)/ : /WebGPU/);
    };

    it(`loads the demo model and classifies a sample image${on}`, T, async () => {
      const { page, context, log } = await openPage(b());
      await expectBackend(page);
      try {
        assert.match(await page.textContent('#model-info'), /ResNet-18 .*1000 classes.*96×96.*fast mode, f32/);
        // SwiftShader has no shader-f16 and the CPU no f16 path: f16 cannot be picked, and the picker says why.
        assert.equal(await page.isDisabled('#precision-select option[value="f16"]'), true);
        assert.match(await page.textContent('#precision-select option[value="f16"]'), /needs a GPU with shader-f16/);
        assert.equal(await page.inputValue('#precision-select'), 'f32');
        assert.equal(await page.isVisible('#untrained-note'), true, 'the demo weights must be labelled as untrained');
        await classifySample(page, 'chelsea.png');
        const items = await page.$$eval('#top5 li', (lis) => lis.map((li) => ({ index: li.dataset.index, text: li.textContent })));
        assert.equal(items.length, 5, JSON.stringify(items));
        for (const it of items) {
          assert.match(it.index, /^\d+$/);
          assert.match(it.text, /\d+(\.\d+)?%/);
        }
        const labels = fs.readFileSync(path.join(ROOT, 'data/imagenet_classes.txt'), 'utf8').split('\n');
        assert.ok(items[0].text.includes(labels[Number(items[0].index)]), `top-1 shows its ImageNet name: ${items[0].text}`);
        const r = await page.evaluate(() => ({
          frames: window.__resnet.frames,
          top: window.__resnet.lastResult.top.map((t) => t.index),
          logits: window.__resnet.lastResult.logits.length,
        }));
        assert.equal(r.frames, 1);
        assert.deepEqual(r.top.map(String), items.map((i) => i.index));
        assert.equal(r.logits, 1000);
        assert.ok((await page.$$('#stage-times .st-row')).length >= 2, 'time per stage is shown');
        assert.equal(await page.textContent('#error'), '', log.join('\n'));
        assert.equal(await page.isVisible('#spinner'), false, 'no spinner left running');
      } finally {
        await context.close();
      }
    });

    it(`gives the native CLI’s top-5 for the same weights and image${on}`, T, async (t) => {
      const cli = path.join(ROOT, 'target/release/resnet');
      assert.ok(fs.existsSync(cli), 'target/release/resnet is not built (cargo build --release)');
      const { page, context } = await openPage(b());
      try {
        // The same weights as a file: demoWeights() from the page's own module.
        const weights = path.join(work, 'demo.safetensors');
        await writeDemoWeights(page, weights);
        // coffee.png: no colour profile, so the browser decodes exactly the bytes the CLI reads.
        await classifySample(page, 'coffee.png');
        const web = await page.evaluate(() => window.__resnet.lastResult.top.map((t) => ({ index: t.index, probability: t.probability })));
        const env = { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR || tmpDir('xdg-') };
        const { stdout } = await promisify(execFile)(
          cli,
          ['classify', '--weights', weights, '--json', '--size', String(SIZE), path.join(ROOT, 'www/samples/coffee.png')],
          { env, timeout: 120000 },
        );
        const native = JSON.parse(stdout.trim().split('\n').pop()).top5;
        const msg = `browser ${JSON.stringify(web)}\nnative  ${JSON.stringify(native)}`;
        assert.deepEqual(web.map((x) => x.index), native.map((x) => x.index), msg);
        for (let i = 0; i < 5; i++) assert.ok(Math.abs(web[i].probability - native[i].probability) < 2e-3, msg);
      } finally {
        await context.close();
      }
    });

    it(`draws non-blank feature maps in every block panel${on}`, T, async () => {
      const { page, context } = await openPage(b());
      try {
        await classifySample(page, 'astronaut.png');
        const blocks = await page.evaluate(() => window.__resnet.model.blocks().map((b) => b.name));
        const stats = await page.$$eval('#blocks .block-panel', (panels) =>
          panels.map((p) => {
            const canvases = [...p.querySelectorAll('canvas')];
            let n = 0;
            let sum = 0;
            let sum2 = 0;
            for (const c of canvases) {
              const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
              for (let i = 0; i < d.length; i += 4) {
                const v = d[i] + d[i + 1] + d[i + 2] + d[i + 3];
                n++;
                sum += v;
                sum2 += v * v;
              }
            }
            const mean = sum / Math.max(1, n);
            return { block: p.dataset.block, canvases: canvases.length, variance: sum2 / Math.max(1, n) - mean * mean };
          }),
        );
        assert.deepEqual(stats.map((s) => s.block), blocks, 'one panel per block, in order');
        for (const s of stats) {
          assert.ok(s.canvases >= 1, `${s.block} has a canvas`);
          assert.ok(s.variance > 0, `${s.block} draws something: ${JSON.stringify(s)}`);
        }
        // Identity panels have a skip switch, residual panels a ratio.
        const kinds = await page.evaluate(() => window.__resnet.model.blocks().map((b) => [b.name, b.kind]));
        for (const [name, kind] of kinds) {
          const toggle = await page.$(`.block-panel input.skip-toggle[data-block="${name}"]`);
          assert.equal(!!toggle, kind === 'identity', `${name} (${kind}) skip toggle`);
          if (kind === 'identity' || kind === 'convolutional') {
            assert.match(await page.textContent(`.ratio[data-block="${name}"]`), /\d\.\d{3}/, `${name} ratio`);
          }
        }
        // Clicking a feature map lays it over the frame.
        await page.click('.block-panel[data-block="layer1.0"] canvas', { position: { x: 5, y: 5 } });
        assert.match(await page.textContent('#overlay-text'), /layer1\.0 · channel \d+/);
        const marked = () => page.$$eval('.block-panel.selected', (ps) => ps.map((p) => p.dataset.block));
        assert.deepEqual(await marked(), ['layer1.0']);
        await page.click('#overlay-close');
        assert.deepEqual(await marked(), [], 'closing the overlay unmarks the panel');
        // The keyboard reaches the maps (Tab from the last control before
        // the panels lands on the first panel's first map), and Enter picks one.
        await page.focus('#colormap-select');
        await page.keyboard.press('Tab');
        assert.ok(
          await page.evaluate(() => {
            const a = document.activeElement;
            return a.matches('.bp-tile[data-index="0"]') && a.closest('.block-panel') === document.querySelector('#blocks .block-panel');
          }),
          'Tab reaches the first feature map',
        );
        // The arrows move within a panel; the next Tab leaves it (one stop per panel).
        await page.keyboard.press('ArrowRight');
        assert.equal(await page.evaluate(() => document.activeElement.dataset.index), '1', 'an arrow moves to the next map');
        await page.keyboard.press('Tab');
        assert.ok(
          await page.evaluate(() => {
            const a = document.activeElement;
            return !(a.matches('.bp-tile') && a.closest('.block-panel') === document.querySelector('#blocks .block-panel'));
          }),
          'Tab leaves the panel instead of visiting each map',
        );
        const tile = '.block-panel[data-block="layer2.0"] .bp-tile[data-index="1"]';
        await page.focus(tile);
        const ch = (await page.getAttribute(tile, 'aria-label')).match(/layer2\.0, channel (\d+)/)?.[1];
        assert.ok(ch, await page.getAttribute(tile, 'aria-label'));
        await page.keyboard.press('Enter');
        assert.match(await page.textContent('#overlay-text'), new RegExp(`^layer2\\.0 · channel ${ch} `));
        assert.deepEqual(await marked(), ['layer2.0']);
        assert.equal(await page.getAttribute(tile, 'aria-pressed'), 'true');
        assert.equal(await page.evaluate(() => document.activeElement.dataset.index), '1', 'the tile keeps the focus');
        // Space on the selected map takes it off again, as a second click does.
        await page.keyboard.press(' ');
        assert.deepEqual(await marked(), []);
        assert.equal(await page.getAttribute(tile, 'aria-pressed'), 'false');
        // The class activation map of the top class.
        await page.check('#cam-toggle');
        await page.waitForFunction(() => /Class activation map/.test(document.querySelector('#overlay-text').textContent), null, { timeout: 60000 });
      } finally {
        await context.close();
      }
    });

    it(`skipping an identity block changes the logits, and enabling it restores them${on}`, T, async () => {
      const { page, context } = await openPage(b());
      try {
        await classifySample(page, 'coffee.png');
        const logits = () => page.evaluate(() => Array.from(window.__resnet.lastResult.logits));
        const base = await logits();
        const toggle = '.skip-toggle[data-block="layer2.1"]';
        assert.equal(await page.isChecked(toggle), true);
        let n = await settled(page);
        await page.uncheck(toggle);
        await waitSettled(page, n);
        const skipped = await logits();
        const diff = Math.max(...base.map((v, i) => Math.abs(v - skipped[i])));
        assert.ok(diff > 1e-3, `the logits moved by only ${diff}`);
        assert.equal(await page.evaluate(() => window.__resnet.model.blockEnabled('layer2.1')), false);
        assert.match(await page.getAttribute('.block-panel[data-block="layer2.1"]', 'class'), /skipped/);
        // The frame's statistics say so too: no main path, so ‖F(x)‖ = 0.
        const r = await page.evaluate(() => window.__resnet.model.residuals().find((x) => x.name === 'layer2.1'));
        assert.ok(r.skipped && r.main === 0 && r.ratio === 0 && r.shortcut > 0, JSON.stringify(r));
        assert.equal(await page.textContent('.block-panel[data-block="layer2.1"] .ratio-num'), 'skipped');
        n = await settled(page);
        await page.check(toggle);
        await waitSettled(page, n);
        const back = await logits();
        const diff2 = Math.max(...base.map((v, i) => Math.abs(v - back[i])));
        assert.ok(diff2 < 1e-4, `re-enabled, the logits differ by ${diff2}`);
        // Skipped across a re-plan: the rebuilt panel is still unticked and dimmed.
        n = await settled(page);
        await page.uncheck(toggle);
        await waitSettled(page, n);
        n = await settled(page);
        await page.selectOption('#size-select', '128');
        await waitSettled(page, n);
        assert.equal(await page.isChecked(toggle), false);
        assert.match(await page.getAttribute('.block-panel[data-block="layer2.1"]', 'class'), /skipped/);
      } finally {
        await context.close();
      }
    });
  }

  it('honours the API options stats: false and precision: f16 (refused without shader-f16)', T, async () => {
    const { page, context } = await openPage();
    try {
      const r = await page.evaluate(async () => {
        const { ResNet, demoWeights } = await import('/js/index.js');
        const bytes = await demoWeights();
        const m = await ResNet.load(bytes, { inputSize: 64, stats: false });
        const out = await m.classifyTensor(new Float32Array(3 * 64 * 64).fill(0.5));
        const res = { top: out.top.length, residuals: m.residuals().length, means: m.channelMeans('layer1.0').length };
        m.dispose();
        const hasF16 = (await navigator.gpu.requestAdapter()).features.has('shader-f16');
        let f16;
        try {
          const m2 = await ResNet.load(bytes, { inputSize: 64, precision: 'f16' });
          f16 = `loaded ${m2.info.precision}`;
          m2.dispose();
        } catch (e) {
          f16 = `error ${e.message}`;
        }
        return { ...res, hasF16, f16 };
      });
      assert.equal(r.top, 5);
      assert.equal(r.residuals, 0, 'stats: false computes no residual norms');
      assert.equal(r.means, 0, 'stats: false computes no channel means');
      if (r.hasF16) assert.equal(r.f16, 'loaded f16');
      else assert.match(r.f16, /shader-f16/);
    } finally {
      await context.close();
    }
  });

  it('classifies the webcam continuously, one frame in flight at a time', T, async () => {
    const { page, context, log } = await openPage();
    try {
      // Count concurrent classify calls.
      await page.evaluate(() => {
        const m = window.__resnet.model;
        const orig = m.classify.bind(m);
        window.__inflight = { now: 0, max: 0 };
        m.classify = async (...a) => {
          const f = window.__inflight;
          f.now++;
          f.max = Math.max(f.max, f.now);
          try {
            return await orig(...a);
          } finally {
            f.now--;
          }
        };
      });
      await page.click('#camera-start');
      await page.waitForFunction(() => window.__resnet.frames >= 2, null, { timeout: 120000 });
      const first = await page.evaluate(() => window.__resnet.frames);
      await page.waitForFunction((n) => window.__resnet.frames >= n + 3, first, { timeout: 120000 });
      const r = await page.evaluate(() => ({
        max: window.__inflight.max,
        video: [document.querySelector('#video').videoWidth, document.querySelector('#video').videoHeight],
        fps: document.querySelector('#fps').textContent,
        top: document.querySelectorAll('#top5 li').length,
        error: document.querySelector('#error').textContent,
      }));
      assert.deepEqual(r.video, [160, 120], 'the fake webcam plays the test clip');
      assert.equal(r.max, 1, 'at most one classify in flight');
      assert.match(r.fps, /^\d+(\.\d)?$/);
      assert.equal(r.top, 5);
      assert.equal(r.error, '', log.join('\n'));
      // Live panels still get drawn (round-robin).
      const drawn = await page.$$eval('.block-panel canvas', (cs) => cs.filter((c) => c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some((v) => v)).length);
      assert.ok(drawn >= 3, `${drawn} panels drawn while live`);
      const before = await settled(page);
      await page.click('#camera-stop');
      assert.equal(await page.isEnabled('#camera-start'), true);
      // The still it leaves is classified once more, with every panel: the
      // top-5 shown is the still's own, not that of an earlier live frame.
      await waitSettled(page, before);
      const still = await page.evaluate(async () => {
        const s = window.__resnet;
        const own = await s.model.classify(s.source.el);
        return { kind: s.source.kind, gap: Math.max(...own.logits.map((v, i) => Math.abs(v - s.lastResult.logits[i]))) };
      });
      assert.equal(still.kind, 'image');
      assert.ok(still.gap < 1e-4, `the top-5 shown is not the still's (logits differ by ${still.gap})`);
      const stopped = await page.evaluate(() => window.__resnet.frames);
      await page.waitForTimeout(1500);
      assert.equal(await page.evaluate(() => window.__resnet.frames), stopped, 'stopping the webcam stops classifying');
    } finally {
      await context.close();
    }
  });

  it('says so when there is no camera', T, async () => {
    const plain = await launch(); // no fake-device flags: no camera, no auto-accepted prompt
    try {
      const { page } = await openPage(plain);
      await page.click('#camera-start');
      await page.waitForFunction(() => document.querySelector('#error').textContent.length > 0, null, { timeout: 30000 });
      assert.match(await page.textContent('#error'), /camera/i);
      assert.equal(await page.isVisible('#error'), true);
      assert.equal(await page.isEnabled('#camera-start'), true, 'the button is usable again');
      assert.equal(await page.isVisible('#spinner'), false);
    } finally {
      await plain.close();
    }
  });

  it('says so when camera permission is denied', T, async () => {
    // A camera, but no auto-accepted prompt: headless Chromium denies the permission.
    const denying = await launch({ extraArgs: ['--use-fake-device-for-media-stream'] });
    try {
      const { page } = await openPage(denying);
      await page.click('#camera-start');
      await page.waitForFunction(() => document.querySelector('#error').textContent.length > 0, null, { timeout: 30000 });
      assert.match(await page.textContent('#error'), /denied/i);
      assert.equal(await page.isEnabled('#camera-start'), true);
      assert.equal(await page.isEnabled('#camera-stop'), false);
    } finally {
      await denying.close();
    }
  });

  it('shows the engine’s message for a file that is not ResNet weights', T, async () => {
    const { page, context } = await openPage();
    try {
      const garbage = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 256));
      await page.selectOption('#model-select', 'file');
      await page.setInputFiles('#weights-file', { name: 'garbage.safetensors', mimeType: 'application/octet-stream', buffer: garbage });
      await page.click('#load-model'); // waits until the automatic load has re-enabled it
      await page.waitForFunction(() => document.querySelector('#error').textContent.length > 0, null, { timeout: 60000 });
      await page.waitForSelector('#load-model:not([disabled])');
      const err = await page.textContent('#error');
      assert.match(err, /not/, err);
      assert.match(err, /garbage\.safetensors/, err);
      // A well-formed safetensors file that is not a ResNet: the missing tensor is named.
      const header = Buffer.from(JSON.stringify({ 'encoder.weight': { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }).padEnd(64, ' '));
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(header.length));
      await page.setInputFiles('#weights-file', { name: 'bert.safetensors', mimeType: 'application/octet-stream', buffer: Buffer.concat([len, header, Buffer.alloc(8)]) });
      await page.waitForFunction(() => /bert\.safetensors/.test(document.querySelector('#error').textContent), null, { timeout: 60000 });
      await page.waitForSelector('#load-model:not([disabled])');
      const err2 = await page.textContent('#error');
      assert.match(err2, /not ResNet weights|conv1/i, err2);
      assert.equal(await page.isVisible('#spinner'), false);
      // The demo model is still there and still works.
      await classifySample(page, 'chelsea.png');
      assert.equal((await page.$$('#top5 li')).length, 5);
    } finally {
      await context.close();
    }
  });

  it('offers the demo weights or a local file when the download fails', T, async () => {
    const { page, context } = await openPage();
    try {
      await context.route('https://huggingface.co/**', (route) => route.abort('internetdisconnected'));
      await page.selectOption('#model-select', 'resnet18');
      await page.click('#load-model');
      await page.waitForFunction(() => document.querySelector('#error').textContent.length > 0, null, { timeout: 60000 });
      assert.match(await page.textContent('#error'), /ResNet-18/);
      assert.equal(await page.isVisible('#error-actions'), true);
      assert.equal(await page.isEnabled('#load-model'), true);
      assert.equal(await page.isVisible('#progress'), false);
      // The way out: the demo weights.
      const loads = await page.evaluate(() => window.__resnet.loads);
      await page.click('#error-use-demo');
      await page.waitForFunction((n) => window.__resnet.loads > n, loads, { timeout: 120000 });
      assert.equal(await page.textContent('#error'), '');
    } finally {
      await context.close();
    }
  });

  it('runs a load asked for while another runs once that one has settled', T, async () => {
    const { page, context, log } = await openPage();
    try {
      // ResNet-18's download is held (and then served the demo weights) while a file is dropped.
      const demo = Buffer.from(await page.evaluate(async () => Array.from(await (await import('/js/index.js')).demoWeights())));
      let release;
      const held = new Promise((r) => (release = r));
      let asked;
      const requested = new Promise((r) => (asked = r));
      await context.route('https://huggingface.co/**', async (route) => {
        asked();
        await held;
        await route.fulfill({ status: 200, body: demo, headers: { 'content-type': 'application/octet-stream', 'access-control-allow-origin': '*' } });
      });
      const loads = await page.evaluate(() => window.__resnet.loads);
      await page.selectOption('#model-select', 'resnet18');
      await page.click('#load-model');
      await requested;
      assert.equal(await page.isDisabled('#load-model'), true, 'the download is still running');
      await page.evaluate(async () => {
        const { demoWeights } = await import('/js/index.js');
        const dt = new DataTransfer();
        dt.items.add(new File([await demoWeights()], 'dropped.safetensors', { type: 'application/octet-stream' }));
        document.querySelector('#stage').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
      });
      // It waits: the picker shows what loads now, the status line what comes next.
      assert.equal(await page.inputValue('#model-select'), 'resnet18');
      assert.match(await page.textContent('#status'), /ResNet-18.*Next: “dropped\.safetensors”/);
      release();
      // Both load, the dropped file last.
      await page.waitForFunction((n) => window.__resnet.loads >= n + 2, loads, { timeout: 120000 }).catch(async () => {
        assert.fail(`the dropped weights were not loaded: ${await page.textContent('#status')}\n${log.join('\n')}`);
      });
      await page.waitForSelector('#load-model:not([disabled])');
      assert.equal(await page.evaluate(() => window.__resnet.loads), loads + 2);
      assert.equal(await page.inputValue('#model-select'), 'file');
      assert.equal(await page.evaluate(() => document.querySelector('#weights-file').files[0]?.name), 'dropped.safetensors');
      assert.match(await page.textContent('#status'), /ready/);
      assert.equal(await page.textContent('#error'), '', log.join('\n'));
    } finally {
      await context.close();
    }
  });

  it('runs on the CPU in a browser without WebGPU, says why, and can switch back', T, async () => {
    const context = await browser.newContext();
    try {
      // This browser has WebGPU: hide it from the page, as a browser without it would.
      await context.addInitScript(() => {
        Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined, configurable: true });
      });
      const page = await context.newPage();
      await page.goto(server.url + PAGE);
      await page.waitForFunction(() => window.__resnet?.loads >= 1 || document.querySelector('#error')?.textContent, null, { timeout: 60000 });
      assert.equal(await page.textContent('#error'), '');
      const info = await page.textContent('#backend-info');
      assert.match(info, /CPU/);
      assert.match(info, /no WebGPU/);
      assert.match(info, /Chrome/);
      assert.equal(await page.isDisabled('#backend-select option[value="webgpu"]'), true, 'WebGPU cannot be picked here');
      assert.equal(await page.isVisible('#spinner'), false);
    } finally {
      await context.close();
    }
    // With WebGPU, the picker moves a loaded model between the backends.
    const { page, context: c2 } = await openPage();
    try {
      assert.equal(await page.evaluate(() => window.__resnet.model.info.backend), 'webgpu');
      const loads = await page.evaluate(() => window.__resnet.loads);
      await page.selectOption('#backend-select', 'cpu');
      await page.waitForFunction((n) => window.__resnet.loads > n, loads, { timeout: 60000 });
      assert.equal(await page.evaluate(() => window.__resnet.model.info.backend), 'cpu');
      assert.match(await page.textContent('#backend-info'), /CPU .*asked for/);
    } finally {
      await c2.close();
    }
  });

  it('reloads the model when the GPU device is lost', T, async () => {
    const { page, context } = await openPage();
    try {
      await classifySample(page, 'coffee.png');
      const loads = await page.evaluate(() => window.__resnet.loads);
      await page.evaluate(() => {
        const m = window.__resnet.model;
        m.classify = () => Promise.reject(Object.assign(new Error('the GPU device was lost (simulated)'), { name: 'ResNetError', code: 'DEVICE_LOST' }));
      });
      await page.click('.sample[data-src$="/chelsea.png"]');
      await page.waitForFunction((n) => window.__resnet.loads > n, loads, { timeout: 120000 });
      await page.waitForFunction(() => /lost/.test(document.querySelector('#status').textContent), null, { timeout: 10000 });
      // Classifying works again on the new model.
      const n = await settled(page);
      await page.click('.sample[data-src$="/astronaut.png"]');
      await waitSettled(page, n);
      assert.equal((await page.$$('#top5 li')).length, 5);
      assert.equal(await page.evaluate(() => window.__resnet.model.info.backend), 'webgpu');
      // Lost again after good frames: a fresh loss, so the GPU again.
      const loads2 = await page.evaluate(() => window.__resnet.loads);
      await page.evaluate(() => {
        const m = window.__resnet.model;
        m.classify = () => Promise.reject(Object.assign(new Error('the GPU device was lost (simulated)'), { name: 'ResNetError', code: 'DEVICE_LOST' }));
      });
      const frames = await page.evaluate(() => window.__resnet.frames);
      await page.click('.sample[data-src$="/chelsea.png"]');
      await page.waitForFunction((k) => window.__resnet.loads > k, loads2, { timeout: 120000 });
      assert.equal(await page.evaluate(() => window.__resnet.model.info.backend), 'webgpu');
      // The reloaded model classifies the still.
      await page.waitForFunction((f) => window.__resnet.frames > f, frames, { timeout: 120000 });
      // Lost again before the reloaded model classifies anything (every GPU
      // model fails from now on, however long its reload takes): the page
      // moves to the CPU backend instead of reloading on the GPU forever.
      const loads3 = await page.evaluate(() => window.__resnet.loads);
      await page.evaluate(() => {
        const proto = Object.getPrototypeOf(window.__resnet.model);
        const classify = proto.classify;
        proto.classify = function (...args) {
          if (this.info.backend === 'cpu') return classify.apply(this, args);
          return Promise.reject(Object.assign(new Error('the GPU device was lost (simulated)'), { name: 'ResNetError', code: 'DEVICE_LOST' }));
        };
      });
      await page.click('.sample[data-src$="/coffee.png"]');
      await page.waitForFunction((k) => window.__resnet.loads > k + 1, loads3, { timeout: 240000 });
      assert.equal(await page.evaluate(() => window.__resnet.model.info.backend), 'cpu');
      assert.ok(await page.evaluate(() => window.__resnet.errors.some((e) => /lost again.*CPU backend/.test(e))), 'the page says it moves to the CPU');
      const n2 = await settled(page);
      await page.click('.sample[data-src$="/coffee.png"]');
      await waitSettled(page, n2);
      assert.equal((await page.$$('#top5 li')).length, 5);
    } finally {
      await context.close();
    }
  });
});
