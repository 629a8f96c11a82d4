// The npm package in a fresh Vite app: `npm pack` the repository, install
// the tarball into a new app in a temp dir, `vite build`, serve dist/ and
// classify in Chromium, on the main thread and in a module Worker.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { ROOT, launch, missingPrerequisite, recordConsole, startServer, tmpDir } from './helpers.mjs';

const run = promisify(execFile);
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const viteVersion = (() => {
  try {
    return JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules/vite/package.json'), 'utf8')).version;
  } catch {
    return null;
  }
})();
const missing =
  missingPrerequisite() ??
  (!pkg.name ? 'package.json has no name: nothing to pack' : null) ??
  (!viteVersion ? 'vite is not installed in the repository (npm install)' : null);

const npm = (args, cwd) =>
  run('npm', args, { cwd, timeout: 300000, maxBuffer: 64 << 20, env: { ...process.env, npm_config_fund: 'false', npm_config_audit: 'false', npm_config_update_notifier: 'false' } });

// ---------------------------------------------------------------- the app

const INDEX_HTML = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>resnet-wgpu in a Vite app</title></head>
<body>
  <h1>resnet-wgpu in a Vite app</h1>
  <pre id="main-out" data-state="running">running…</pre>
  <pre id="worker-out" data-state="running">running…</pre>
  <script type="module" src="/main.js"></script>
</body>
</html>
`;

// A synthetic 80×64 picture: gradients and a disc.
const PICTURE = `
export function picture(width = 80, height = 64) {
  const data = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      const d = Math.hypot(x - 40, y - 30) < 18;
      data[i] = d ? 230 : (x * 3) & 255;
      data[i + 1] = d ? 40 : (y * 4) & 255;
      data[i + 2] = ((x + y) * 2) & 255;
      data[i + 3] = 255;
    }
  }
  return new ImageData(data, width, height);
}
`;

const MAIN_JS = (name) => `
import { ResNet, demoWeights, webgpuSupport, imagenetClasses } from '${name}';
import { picture } from './picture.js';

const show = (id, state, value) => {
  const el = document.getElementById(id);
  el.textContent = typeof value === 'string' ? value : JSON.stringify(value);
  el.dataset.state = state;
};
const brief = (r) => r.top.map((t) => ({ index: t.index, probability: t.probability }));

async function mainThread() {
  // Without WebGPU the default backend ('auto') runs on the CPU.
  const support = await webgpuSupport();
  const model = await ResNet.load(demoWeights(), { inputSize: 64 });
  const image = picture();
  const fromImageData = await model.classify(image, { topk: 5 });
  const canvas = document.createElement('canvas');
  canvas.width = image.width;
  canvas.height = image.height;
  canvas.getContext('2d').putImageData(image, 0, 0);
  const fromCanvas = await model.classify(canvas, { topk: 5 });
  const info = model.info;
  model.dispose();
  const names = await imagenetClasses();
  return { info, webgpu: support.ok, imageData: brief(fromImageData), canvas: brief(fromCanvas), classNames: [names.length, names[0], names[999]] };
}

mainThread().then(
  (r) => show('main-out', 'done', r),
  (e) => show('main-out', 'error', 'ERROR ' + (e && e.message || e)),
);

const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
// The package's module has a top-level await (it fetches the wasm): messages
// posted before the worker's module has finished evaluating can be lost, so
// the worker says when it listens.
worker.onmessage = (e) => {
  if (e.data.ready) return worker.postMessage('go');
  show('worker-out', e.data.error ? 'error' : 'done', e.data.error ? 'ERROR ' + e.data.error : e.data);
};
worker.onerror = (e) => show('worker-out', 'error', 'ERROR worker: ' + (e.message || 'failed to start'));
`;

const WORKER_JS = (name) => `
import { ResNet, demoWeights } from '${name}';
import { picture } from './picture.js';

self.onmessage = async () => {
  try {
    const model = await ResNet.load(demoWeights(), { inputSize: 64 });
    const r = await model.classify(picture(), { topk: 5 });
    self.postMessage({ worker: true, backend: model.info.backend, imageData: r.top.map((t) => ({ index: t.index, probability: t.probability })) });
    model.dispose();
  } catch (e) {
    self.postMessage({ error: String(e && e.message || e) });
  }
};
self.postMessage({ ready: true });
`;

// No worker or wasm settings: the package must work with Vite's defaults.
const VITE_CONFIG = `export default { logLevel: 'warn' };\n`;

if (missing) throw new Error(missing);

describe('the npm package in a Vite app', () => {
  let work;
  let server;
  let browser;

  before(async () => {
    work = tmpDir('resnet-vite-');
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    if (work && !process.env.KEEP_TMP) fs.rmSync(work, { recursive: true, force: true });
  });

  let tarball;
  let dist;

  it('packs with the files it needs', { timeout: 120000 }, async () => {
    const { stdout } = await npm(['pack', '--json', '--pack-destination', work], ROOT);
    const [info] = JSON.parse(stdout);
    tarball = path.join(work, info.filename);
    const files = info.files.map((f) => f.path);
    for (const f of ['package.json', 'js/index.js', 'js/index.d.ts', 'pkg/resnet_wgpu.js', 'pkg/resnet_wgpu_bg.wasm', 'data/imagenet_classes.txt', 'README.md']) {
      assert.ok(files.includes(f), `${f} in the tarball: ${files.join(', ')}`);
    }
    assert.ok(!files.some((f) => f.startsWith('www/') || f.startsWith('src/') || f.startsWith('tests/')), files.join(', '));
  });

  it('installs into a fresh Vite app and builds', { timeout: 600000 }, async (t) => {
    if (!tarball) return t.skip('no tarball');
    const app = path.join(work, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'resnet-vite-check', private: true, type: 'module' }, null, 2));
    fs.writeFileSync(path.join(app, 'index.html'), INDEX_HTML);
    fs.writeFileSync(path.join(app, 'main.js'), MAIN_JS(pkg.name));
    fs.writeFileSync(path.join(app, 'worker.js'), WORKER_JS(pkg.name));
    fs.writeFileSync(path.join(app, 'picture.js'), PICTURE);
    fs.writeFileSync(path.join(app, 'vite.config.js'), VITE_CONFIG);
    await npm(['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', tarball, `vite@${viteVersion}`], app);
    const { stdout, stderr } = await run(path.join(app, 'node_modules/.bin/vite'), ['build'], { cwd: app, timeout: 300000 });
    dist = path.join(app, 'dist');
    const assets = fs.readdirSync(path.join(dist, 'assets'));
    assert.ok(assets.some((f) => f.endsWith('.wasm')), `a .wasm asset in dist/assets: ${assets.join(', ')}\n${stdout}${stderr}`);
  });

  /** Opens the built app in `b`: what the main thread and the Worker computed. */
  async function runApp(b) {
    const page = await b.newPage();
    const log = recordConsole(page);
    await page.goto(server.url + '/');
    const done = (id) =>
      page.waitForFunction((i) => document.getElementById(i).dataset.state !== 'running', id, { timeout: 180000 });
    try {
      await Promise.all([done('main-out'), done('worker-out')]);
    } catch (e) {
      const state = await page.evaluate(() => [...document.querySelectorAll('pre')].map((p) => p.textContent).join('\n'));
      throw new Error(`${e.message}\n${state}\n${log.join('\n')}`);
    }
    const main = await page.textContent('#main-out');
    const worker = await page.textContent('#worker-out');
    assert.doesNotMatch(main, /^ERROR/, `${main}\n${log.join('\n')}`);
    assert.doesNotMatch(worker, /^ERROR/, `${worker}\n${log.join('\n')}`);
    await page.close();
    return { m: JSON.parse(main), w: JSON.parse(worker) };
  }

  let onGpu;

  it('classifies on the main thread and in a module Worker', { timeout: 240000 }, async (t) => {
    if (!dist) return t.skip('no build');
    server = await startServer({ root: dist });
    browser = await launch();
    const { m, w } = await runApp(browser);
    assert.equal(m.imageData.length, 5);
    assert.equal(m.canvas.length, 5);
    assert.equal(w.imageData.length, 5);
    assert.deepEqual([m.info.backend, w.backend], ['webgpu', 'webgpu']);
    assert.deepEqual(m.info.inputSize, [64, 64]);
    assert.deepEqual(m.classNames, [1000, 'tench', 'toilet paper'], 'imagenetClasses() from the bundled package');
    // Same weights, same pixels: the same answer everywhere.
    assert.deepEqual(m.canvas.map((x) => x.index), m.imageData.map((x) => x.index));
    assert.deepEqual(w.imageData.map((x) => x.index), m.imageData.map((x) => x.index));
    for (let i = 0; i < 5; i++) assert.ok(Math.abs(w.imageData[i].probability - m.imageData[i].probability) < 1e-4);
    onGpu = m;
  });

  it('runs on the CPU in a browser without WebGPU, main thread and Worker alike', { timeout: 240000 }, async (t) => {
    if (!dist || !onGpu) return t.skip('no build');
    const noGpu = await launch({ webgpu: false });
    try {
      const { m, w } = await runApp(noGpu);
      assert.equal(m.webgpu, false);
      assert.deepEqual([m.info.backend, w.backend], ['cpu', 'cpu']);
      // The CPU computes what the GPU did.
      for (const r of [m.imageData, m.canvas, w.imageData]) {
        assert.deepEqual(r.map((x) => x.index), onGpu.imageData.map((x) => x.index));
        for (let i = 0; i < 5; i++) assert.ok(Math.abs(r[i].probability - onGpu.imageData[i].probability) < 1e-4);
      }
    } finally {
      await noGpu.close();
    }
  });
});
