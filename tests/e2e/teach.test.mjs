// Teach mode in the page, with a fake webcam whose clip alternates between
// two clearly different scenes (reddish, bluish; 2 s each, with noise):
// record class A while scene A shows and class B during B, train the head,
// and the model then follows the scene on at least 90% of live frames; the
// same with the last stage; the trained model and the recordings download
// and load back to the same predictions; misuse says what is wrong. On
// WebGPU (SwiftShader) and on the CPU backend.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { launch, missingPrerequisite, recordConsole, startServer, tmpDir, writeScenes } from './helpers.mjs';

const missing = missingPrerequisite();
if (missing) throw new Error(missing);

/** In the page: which scene the webcam shows now ('A' reddish, 'B' bluish), and the frame as a canvas. */
async function sceneNow(page) {
  return page.evaluate(() => {
    const v = document.querySelector('#video');
    const c = document.createElement('canvas');
    c.width = 32;
    c.height = 24;
    const ctx = c.getContext('2d', { willReadFrequently: true });
    ctx.drawImage(v, 0, 0, 32, 24);
    const d = ctx.getImageData(0, 0, 32, 24).data;
    let r = 0;
    let b = 0;
    for (let i = 0; i < d.length; i += 4) {
      r += d[i];
      b += d[i + 2];
    }
    return r > b ? 'A' : 'B';
  });
}

/** Holds class `i`'s record button for `ms` while one scene shows; returns that scene, or null at a change. */
async function recordOnce(page, i, ms) {
  const before = await sceneNow(page);
  const button = page.locator('.teach-record').nth(i);
  await button.focus();
  await page.keyboard.down(' ');
  await page.waitForTimeout(ms);
  await page.keyboard.up(' ');
  const afterScene = await sceneNow(page);
  return before === afterScene ? before : null;
}

/** Records until class 0 has `n` frames of scene A and class 1 `n` of B (a hold spanning a change is undone). */
async function recordScenes(page, n) {
  for (let tries = 0; tries < 200; tries++) {
    const counts = await page.evaluate(() => window.__teach.classes.map((c) => c.examples.length));
    if (counts[0] >= n && counts[1] >= n) return counts;
    const scene = await sceneNow(page);
    const i = scene === 'A' ? 0 : 1;
    if (counts[i] >= n) {
      await page.waitForTimeout(200);
      continue;
    }
    const got = await recordOnce(page, i, 300);
    if (got !== (i === 0 ? 'A' : 'B')) {
      // The scene changed during the hold: drop what it recorded.
      await page.evaluate(([k, before]) => {
        const c = window.__teach.classes[k];
        c.examples.length = before;
      }, [i, counts[i]]);
    }
  }
  throw new Error('could not record both scenes');
}

/** Classifies `frames` live frames (a snapshot each, so the scene and the answer are of the same frame): the share that follows the scene. */
async function followShare(page, frames) {
  return page.evaluate(async (frames) => {
    const v = document.querySelector('#video');
    const names = window.__teach.classes.map((c) => c.name);
    let right = 0;
    for (let k = 0; k < frames; k++) {
      const c = document.createElement('canvas');
      c.width = v.videoWidth;
      c.height = v.videoHeight;
      const ctx = c.getContext('2d', { willReadFrequently: true });
      ctx.drawImage(v, 0, 0);
      const d = ctx.getImageData(0, 0, c.width, c.height).data;
      let r = 0;
      let b = 0;
      for (let i = 0; i < d.length; i += 16) {
        r += d[i];
        b += d[i + 2];
      }
      const res = await window.__resnet.model.classify(c, { topk: 1 });
      if (res.top[0].label === (r > b ? names[0] : names[1])) right += 1;
      await new Promise((ok) => setTimeout(ok, 60));
    }
    return right / frames;
  }, frames);
}

async function trainAs(page, what) {
  const runs = await page.evaluate(() => window.__teach.runs);
  await page.selectOption('#teach-what', what);
  await page.click('#teach-train');
  await page.waitForFunction((r) => window.__teach.runs > r || /failed/.test(document.querySelector('#teach-message').textContent), runs, { timeout: 240000, polling: 200 });
  const msg = await page.textContent('#teach-message');
  assert.match(msg, /^Trained/, msg);
  return msg;
}

describe('Teach mode', () => {
  let server;
  let browser;
  let dir;

  before(async () => {
    dir = tmpDir('resnet-teach-');
    server = await startServer();
    browser = await launch({ camera: writeScenes(path.join(dir, 'scenes.y4m')), extraArgs: ['--js-flags=--expose-gc', '--enable-precise-memory-info'] });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('keeps memory flat over twenty rounds of record, train, clear', { timeout: 600000 }, async () => {
    const page = await browser.newPage();
    const log = recordConsole(page);
    await page.goto(`${server.url}/www/index.html?model=demo&size=64`);
    await page.waitForFunction(() => window.__resnet?.model, null, { timeout: 120000 });
    await page.click('#camera-start');
    await page.waitForFunction(() => document.querySelector('#video').readyState >= 2, null, { timeout: 60000 });
    await page.fill('#teach-epochs', '2');
    const sample = () =>
      page.evaluate(async () => {
        const api = await import('/js/index.js');
        for (let k = 0; k < 3; k++) {
          globalThis.gc?.();
          await new Promise((r) => setTimeout(r, 100));
        }
        return { wasm: api.wasmMemoryBytes(), heap: performance.memory.usedJSHeapSize };
      });
    const samples = [];
    for (let round = 0; round < 20; round++) {
      await recordOnce(page, 0, 300);
      await recordOnce(page, 1, 300);
      await trainAs(page, 'head');
      await page.click('#teach-clear');
      if (round === 4 || round === 19) samples.push(await sample());
    }
    const [start, end] = samples;
    const grew = { wasm: end.wasm - start.wasm, heap: end.heap - start.heap };
    console.log(`# teach soak: rounds 5 → 20: wasm ${start.wasm} → ${end.wasm} bytes, JS heap ${start.heap} → ${end.heap} bytes`);
    assert.ok(grew.wasm <= 0, `wasm memory grew by ${grew.wasm} bytes`);
    assert.ok(grew.heap <= 2 << 20, `the JS heap grew by ${grew.heap} bytes`);
    assert.deepEqual(log.filter((l) => l.startsWith('pageerror')), []);
    await page.close();
  });

  for (const backend of ['webgpu', 'cpu']) {
    it(`records two scenes, trains, follows the scene live, saves and reloads (${backend})`, { timeout: 600000 }, async () => {
      const page = await browser.newPage({ acceptDownloads: true });
      const log = recordConsole(page);
      await page.setViewportSize({ width: 1280, height: 1800 });
      await page.goto(`${server.url}/www/index.html?model=demo&size=64&backend=${backend}`);
      await page.waitForFunction(() => window.__resnet?.model, null, { timeout: 120000 });
      assert.equal(await page.evaluate(() => window.__resnet.model.info.backend), backend);
      await page.click('#camera-start');
      await page.waitForFunction(() => document.querySelector('#video').readyState >= 2, null, { timeout: 60000 });

      // Misuse first: one class, an empty class, a foreign file.
      await page.locator('.teach-class').nth(1).locator('text=Remove class').click();
      await page.click('#teach-train');
      assert.match(await page.textContent('#teach-message'), /at least two classes/);
      await page.click('#teach-add-class');
      await recordOnce(page, 0, 200);
      await page.click('#teach-train');
      assert.match(await page.textContent('#teach-message'), /Class “Class 2” has no examples/);
      await page.setInputFiles('#teach-load-file', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello') });
      await page.waitForFunction(() => /neither/.test(document.querySelector('#teach-message').textContent));
      await page.setInputFiles('#teach-load-file', { name: 'fake.json', mimeType: 'application/json', buffer: Buffer.from('{"a": 1}') });
      await page.waitForFunction(() => /not a Teach-mode recordings file/.test(document.querySelector('#teach-message').textContent));
      await page.click('#teach-clear');

      // Rename, record both scenes, train the head.
      await page.locator('.teach-name').nth(0).fill('red room');
      await page.locator('.teach-name').nth(0).dispatchEvent('change');
      await page.locator('.teach-name').nth(1).fill('blue room');
      await page.locator('.teach-name').nth(1).dispatchEvent('change');
      const counts = await recordScenes(page, 20);
      await page.fill('#teach-epochs', '15');
      const t0 = Date.now();
      const headMsg = await trainAs(page, 'head');
      const headSecs = (Date.now() - t0) / 1000;
      const head = await followShare(page, 30);
      assert.ok(head >= 0.9, `the head follows the scene on ${(head * 100).toFixed(0)}% of frames (${log.join('\n')})`);
      assert.deepEqual(await page.evaluate(() => window.__resnet.model.labels), ['red room', 'blue room']);
      // The curves, the confusion matrix, the live bars with the new names.
      assert.equal(await page.evaluate(() => window.__teach.history.length), 15);
      assert.ok((await page.locator('table.confusion button').count()) === 4, 'a 2×2 confusion matrix');
      await page.locator('table.confusion button').first().click();
      assert.ok((await page.locator('#teach-cell img').count()) >= 1, 'a cell shows its examples');
      await page
        .waitForFunction(() => /red room|blue room/.test(document.querySelector('#top5').textContent), null, { timeout: 30000 })
        .catch(async (e) => assert.fail(`${e.message}: ${JSON.stringify(await page.evaluate(() => [window.__resnet.errors, window.__resnet.source?.kind, window.__resnet.frames]))}`));

      // The last stage: the gradient now reaches the last stage's second block.
      const t1 = Date.now();
      await trainAs(page, 'last-stage');
      const stageSecs = (Date.now() - t1) / 1000;
      const stage = await followShare(page, 30);
      assert.ok(stage >= 0.9, `the last stage follows the scene on ${(stage * 100).toFixed(0)}% of frames`);
      const reached = await page.evaluate(() => window.__teach.blockNames.filter((n, i) => window.__teach.gradSteps.at(-1)[i] !== null));
      assert.ok(reached.includes('layer4.1'), `the gradient reaches ${reached}`);
      // And the block's panel shows it.
      assert.match(await page.textContent('.block-panel[data-block="layer4.1"] .bp-grad'), /∂L\/∂x .* ‖∂L\/∂W‖/);
      assert.ok(await page.locator('.block-panel[data-block="layer1.0"] .bp-grad').isHidden(), 'a frozen block shows no gradient');

      // Save the model and the recordings; load both back.
      const [modelDl] = await Promise.all([page.waitForEvent('download'), page.click('#teach-save-model')]);
      const modelFile = path.join(dir, `model-${backend}.safetensors`);
      await modelDl.saveAs(modelFile);
      const [dataDl] = await Promise.all([page.waitForEvent('download'), page.click('#teach-save-data')]);
      const dataFile = path.join(dir, `recordings-${backend}.json`);
      await dataDl.saveAs(dataFile);
      const probe = async () =>
        page.evaluate(async () => {
          const c = document.createElement('canvas');
          c.width = 64;
          c.height = 48;
          const ctx = c.getContext('2d');
          for (const [i, colour] of ['#c04040', '#4040c0'].entries()) {
            ctx.fillStyle = colour;
            ctx.fillRect(i * 32, 0, 32, 48);
          }
          const r = await window.__resnet.model.classify(c, { topk: 2 });
          return Array.from(r.logits);
        });
      const before = await probe();
      // Back to the original model, then the saved file through the picker of the Teach card.
      const loads = await page.evaluate(() => window.__resnet.loads);
      await page.click('#teach-use-original');
      await page.waitForFunction((n) => window.__resnet.loads > n && window.__resnet.model.info.classes === 1000, loads, { timeout: 60000 });
      await page.setInputFiles('#teach-load-file', modelFile);
      await page.waitForFunction((n) => window.__resnet.loads > n + 1 && window.__resnet.model.info.classes === 2, loads, { timeout: 60000 });
      const after = await probe();
      assert.ok(before.every((v, i) => Math.abs(v - after[i]) <= 1e-4 * (1 + Math.abs(v))), `same logits after reloading: ${before} / ${after}`);
      assert.deepEqual(await page.evaluate(() => window.__resnet.model.labels), ['red room', 'blue room']);
      await page.click('#teach-clear');
      await page.setInputFiles('#teach-load-file', dataFile);
      await page.waitForFunction(() => window.__teach.classes.length === 2 && window.__teach.classes[0].name === 'red room');
      assert.deepEqual(await page.evaluate(() => window.__teach.classes.map((c) => c.examples.length)), counts);
      console.log(`# teach (${backend}): ${counts} examples; head ${headSecs.toFixed(1)} s, follows ${(head * 100).toFixed(0)}%; last stage ${stageSecs.toFixed(1)} s, follows ${(stage * 100).toFixed(0)}%; ${headMsg}`);
      assert.deepEqual(log.filter((l) => l.startsWith('pageerror')), []);
      await page.close();
    });
  }
});
