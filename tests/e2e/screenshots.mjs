#!/usr/bin/env node
// Screenshots of the page for docs/: the demo model on a (fake) webcam.
//
//   node tests/e2e/screenshots.mjs [--size 224] [--out docs]
//
// The fake webcam plays a clip made from a sample photo (slow pan), so the
// feature maps show something recognisable. Writes docs/page-webcam.png and
// docs/activation-view.png; then Teach mode on a clip of two scenes (the
// whole network trained on frames of each): docs/teach-mode.png; then the
// residual experiment's card on the CPU backend, with batchnorm (depth 56,
// 4 epochs: docs/experiment-bn.png) and without it, Glorot's initialisation
// (depth 32, 2 epochs: docs/experiment-nobn-glorot.png).
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, launch, missingPrerequisite, startServer, tmpDir, writeScenes } from './helpers.mjs';

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : dflt;
};
const SIZE = Number(opt('size', '224'));
const OUT = path.resolve(ROOT, opt('out', 'docs'));
const PHOTO = opt('photo', 'chelsea.png');
// `--only experiment`: just the residual experiment's pictures.
const ONLY = opt('only', null);

const why = missingPrerequisite();
if (why) {
  console.error(`screenshots: ${why}`);
  process.exit(1);
}

/** Frames of a slow pan across a sample photo, as a YUV4MPEG2 4:2:0 clip. */
async function clipFromPhoto(browser, url, file, { width = 320, height = 240, frames = 40 } = {}) {
  const page = await browser.newPage();
  await page.goto(url);
  const rgba = await page.evaluate(
    async ({ width, height, frames }) => {
      const img = new Image();
      img.src = location.href;
      await img.decode();
      const c = new OffscreenCanvas(width, height);
      const ctx = c.getContext('2d');
      const out = [];
      for (let f = 0; f < frames; f++) {
        const t = f / (frames - 1);
        const scale = Math.max(width / img.naturalWidth, height / img.naturalHeight) * (1.15 - 0.1 * t);
        const w = width / scale;
        const h = height / scale;
        const x = (img.naturalWidth - w) * (0.3 + 0.4 * t);
        const y = (img.naturalHeight - h) * 0.5;
        ctx.drawImage(img, x, y, w, h, 0, 0, width, height);
        const d = ctx.getImageData(0, 0, width, height).data;
        let s = '';
        for (let i = 0; i < d.length; i += 0x8000) s += String.fromCharCode.apply(null, d.subarray(i, i + 0x8000));
        out.push(btoa(s));
      }
      return out;
    },
    { width, height, frames },
  );
  await page.close();
  const parts = [Buffer.from(`YUV4MPEG2 W${width} H${height} F10:1 Ip A1:1 C420jpeg\n`)];
  for (const b64 of rgba) {
    const d = Buffer.from(b64, 'base64');
    const Y = Buffer.alloc(width * height);
    const U = Buffer.alloc((width / 2) * (height / 2));
    const V = Buffer.alloc((width / 2) * (height / 2));
    for (let i = 0; i < width * height; i++) {
      const [r, g, b] = [d[i * 4], d[i * 4 + 1], d[i * 4 + 2]];
      Y[i] = Math.round(0.299 * r + 0.587 * g + 0.114 * b);
    }
    for (let y = 0; y < height / 2; y++) {
      for (let x = 0; x < width / 2; x++) {
        let r = 0;
        let g = 0;
        let b = 0;
        for (const [dx, dy] of [[0, 0], [1, 0], [0, 1], [1, 1]]) {
          const i = ((2 * y + dy) * width + 2 * x + dx) * 4;
          r += d[i] / 4;
          g += d[i + 1] / 4;
          b += d[i + 2] / 4;
        }
        const k = y * (width / 2) + x;
        U[k] = Math.max(0, Math.min(255, Math.round(128 - 0.168736 * r - 0.331264 * g + 0.5 * b)));
        V[k] = Math.max(0, Math.min(255, Math.round(128 + 0.5 * r - 0.418688 * g - 0.081312 * b)));
      }
    }
    parts.push(Buffer.from('FRAME\n'), Y, U, V);
  }
  fs.writeFileSync(file, Buffer.concat(parts));
}

const work = tmpDir('resnet-shots-');
const server = await startServer();
try {
  if (ONLY !== 'experiment') {
  const clip = path.join(work, 'webcam.y4m');
  const plain = await launch();
  await clipFromPhoto(plain, `${server.url}/www/samples/${PHOTO}`, clip);
  await plain.close();

  const browser = await launch({ camera: clip });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on('pageerror', (e) => console.error('pageerror:', e.message));
  await page.goto(`${server.url}/www/?model=demo&size=${SIZE}`);
  await page.waitForFunction(() => window.__resnet?.loads >= 1 || document.querySelector('#error').textContent, null, { timeout: 180000 });
  const err = await page.textContent('#error');
  if (err) throw new Error(`the page shows an error: ${err}`);
  await page.click('#camera-start');
  await page.check('#cam-toggle');
  // A few frames, and every panel drawn at least once (live, panels refresh round-robin).
  await page.waitForFunction(
    () =>
      window.__resnet.frames >= 4 &&
      [...document.querySelectorAll('.block-panel canvas')].every((c) =>
        c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some((v) => v),
      ),
    null,
    { timeout: 300000, polling: 500 },
  );
  // Lay one stage-1 feature map over the frame in the activation view.
  fs.mkdirSync(OUT, { recursive: true });
  await page.screenshot({ path: path.join(OUT, 'page-webcam.png') });
  await page.click('.block-panel[data-block="layer1.1"] canvas', { position: { x: 70, y: 20 } });
  const act = page.locator('section.activations');
  await act.scrollIntoViewIfNeeded();
  await page.waitForTimeout(300);
  await act.screenshot({ path: path.join(OUT, 'activation-view.png') });
  const frames = await page.evaluate(() => window.__resnet.frames);
  console.log(`screenshots: ${path.relative(ROOT, OUT)}/page-webcam.png, ${path.relative(ROOT, OUT)}/activation-view.png (${frames} frames at ${SIZE}×${SIZE})`);
  await browser.close();

  // Teach mode: hold each class's record button while its scene shows, train the last stage.
  const scenes = await launch({ camera: writeScenes(path.join(work, 'scenes.y4m')) });
  const tp = await scenes.newPage({ viewport: { width: 1400, height: 900 } });
  tp.on('pageerror', (e) => console.error('pageerror:', e.message));
  await tp.goto(`${server.url}/www/?model=demo&size=96`);
  await tp.waitForFunction(() => window.__resnet?.loads >= 1, null, { timeout: 180000 });
  await tp.click('#camera-start');
  await tp.waitForFunction(() => document.querySelector('#video').readyState >= 2, null, { timeout: 60000 });
  const scene = () =>
    tp.evaluate(() => {
      const c = document.createElement('canvas');
      c.width = 8;
      c.height = 6;
      const g = c.getContext('2d');
      g.drawImage(document.querySelector('#video'), 0, 0, 8, 6);
      const d = g.getImageData(0, 0, 8, 6).data;
      let rb = 0;
      for (let i = 0; i < d.length; i += 4) rb += d[i] - d[i + 2];
      return rb > 0 ? 0 : 1;
    });
  for (const [i, name] of ['red room', 'blue room'].entries()) {
    await tp.locator('.teach-name').nth(i).fill(name);
    await tp.locator('.teach-name').nth(i).dispatchEvent('change');
  }
  for (let k = 0; k < 60; k++) {
    const counts = await tp.evaluate(() => window.__teach.classes.map((c) => c.examples.length));
    if (counts.every((n) => n >= 24)) break;
    const i = await scene();
    if (counts[i] >= 24) {
      await tp.waitForTimeout(300);
      continue;
    }
    await tp.locator('.teach-record').nth(i).focus();
    await tp.keyboard.down(' ');
    await tp.waitForTimeout(400);
    await tp.keyboard.up(' ');
    // A hold that spanned a change of scene is undone.
    if ((await scene()) !== i) await tp.evaluate(([k, n]) => (window.__teach.classes[k].examples.length = n), [i, counts[i]]);
  }
  await tp.selectOption('#teach-what', 'all');
  // Slowly enough that the curves and the gradient have something to show.
  await tp.fill('#teach-lr', '0.0003');
  await tp.fill('#teach-epochs', '12');
  await tp.click('#teach-train');
  await tp.waitForFunction(() => window.__teach.runs >= 1, null, { timeout: 300000, polling: 500 });
  await tp.locator('table.confusion button').first().click();
  const card = tp.locator('#teach');
  await card.scrollIntoViewIfNeeded();
  await tp.waitForTimeout(500);
  await card.screenshot({ path: path.join(OUT, 'teach-mode.png') });
  console.log(`screenshots: ${path.relative(ROOT, OUT)}/teach-mode.png (${await tp.textContent('#teach-message')})`);
  await scenes.close();
  }
  // The residual experiment, run in the page as a visitor would.
  const eb = await launch();
  const ep = await eb.newPage({ viewport: { width: 1400, height: 900 } });
  ep.on('pageerror', (e) => console.error('pageerror:', e.message));
  await ep.goto(`${server.url}/www/?model=demo&size=64`);
  await ep.waitForFunction(() => window.__experiment && window.__resnet?.model, null, { timeout: 180000 });
  for (const [file, depth, bn, init, epochs] of [['experiment-bn.png', '56', true, 'he', '4'], ['experiment-nobn-glorot.png', '32', false, 'glorot', '2']]) {
    await ep.selectOption('#exp-depth', depth);
    await ep.setChecked('#exp-bn', bn);
    await ep.selectOption('#exp-init', init);
    await ep.fill('#exp-epochs', epochs);
    await ep.selectOption('#exp-backend', 'cpu');
    const runs = await ep.evaluate(() => window.__experiment.runs);
    await ep.click('#exp-run');
    await ep.waitForFunction((r) => window.__experiment.runs > r, runs, { timeout: 900000, polling: 500 });
    const card = ep.locator('#experiment');
    await card.scrollIntoViewIfNeeded();
    await ep.waitForTimeout(300);
    await card.screenshot({ path: path.join(OUT, file) });
    const st = await ep.evaluate(() => ({ seconds: window.__experiment.seconds, steps: window.__experiment.history.residual.length }));
    console.log(`screenshots: ${path.relative(ROOT, OUT)}/${file} (${st.steps} steps in ${st.seconds.toFixed(1)} s: ${await ep.textContent('#exp-message')})`);
  }
  await eb.close();
} finally {
  await server.stop();
  fs.rmSync(work, { recursive: true, force: true });
}
