// Shared pieces of the browser tests: the static server, Chromium with
// WebGPU (SwiftShader when headless), a hand-made webcam clip.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** Why the browser tests cannot run here, or null. */
export function missingPrerequisite() {
  if (!fs.existsSync(CHROMIUM)) return `no Chromium at ${CHROMIUM} (set CHROMIUM)`;
  for (const f of ['pkg/resnet_wgpu_bg.wasm', 'pkg/resnet_wgpu.js', 'js/index.js']) {
    if (!fs.existsSync(path.join(ROOT, f))) return `${f} is missing: build it with tools/build_wasm.sh`;
  }
  return null;
}

export function tmpDir(prefix = 'resnet-e2e-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Starts tools/serve.mjs on a free port (`args`: more of its flags). Returns { url, stop() }. */
export async function startServer({ root = ROOT, args = [] } = {}) {
  const child = spawn(process.execPath, [path.join(ROOT, 'tools/serve.mjs'), '0', '--root', root, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const base = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`serve.mjs did not start: ${out}${err}`)), 10000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/http:\/\/127\.0\.0\.1:(\d+)\//);
      if (m) {
        clearTimeout(timer);
        resolve(`http://127.0.0.1:${m[1]}`);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve.mjs exited (${code}): ${err}`));
    });
  });
  return {
    url: base,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', resolve);
        child.kill('SIGTERM');
      }),
  };
}

/**
 * A YUV4MPEG2 4:2:0 clip: a moving colour gradient with a bright square
 * sliding across, so successive frames differ.
 */
export function writeY4m(file, { width = 160, height = 120, frames = 20 } = {}) {
  const header = Buffer.from(`YUV4MPEG2 W${width} H${height} F10:1 Ip A1:1 C420jpeg\n`);
  const parts = [header];
  const cw = width / 2;
  const ch = height / 2;
  for (let f = 0; f < frames; f++) {
    const y = Buffer.alloc(width * height);
    const u = Buffer.alloc(cw * ch);
    const v = Buffer.alloc(cw * ch);
    const sx = Math.round(((width - 40) * f) / Math.max(1, frames - 1));
    for (let j = 0; j < height; j++) {
      for (let i = 0; i < width; i++) {
        let val = (i * 2 + j + f * 8) % 256;
        if (i >= sx && i < sx + 40 && j >= 40 && j < 80) val = 235;
        y[j * width + i] = val;
      }
    }
    for (let j = 0; j < ch; j++) {
      for (let i = 0; i < cw; i++) {
        u[j * cw + i] = (128 + 60 * Math.sin((i + f) / 9)) | 0;
        v[j * cw + i] = (128 + 60 * Math.cos((j - f) / 7)) | 0;
      }
    }
    parts.push(Buffer.from('FRAME\n'), y, u, v);
  }
  fs.writeFileSync(file, Buffer.concat(parts));
  return file;
}

/** A fake webcam of two scenes: A (reddish) for 20 frames, then B (bluish) for 20, at 10 frames a second, with a noise that moves. */
export function writeScenes(file, { width = 160, height = 120 } = {}) {
  const header = Buffer.from(`YUV4MPEG2 W${width} H${height} F10:1 Ip A1:1 C420jpeg\n`);
  const parts = [header];
  const cw = width / 2;
  const ch = height / 2;
  let seed = 1;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  for (let f = 0; f < 40; f++) {
    const a = f < 20;
    const y = Buffer.alloc(width * height);
    const u = Buffer.alloc(cw * ch);
    const v = Buffer.alloc(cw * ch);
    for (let i = 0; i < y.length; i++) y[i] = (a ? 90 : 70) + 40 * rand();
    for (let i = 0; i < u.length; i++) {
      u[i] = (a ? 100 : 200) + 20 * rand();
      v[i] = (a ? 200 : 100) + 20 * rand();
    }
    parts.push(Buffer.from('FRAME\n'), y, u, v);
  }
  fs.writeFileSync(file, Buffer.concat(parts));
  return file;
}

/**
 * Headless Chromium with WebGPU (`webgpu: false`: without, as most browsers
 * on Linux are: no navigator.gpu, so the package runs on the CPU);
 * `camera`: a .y4m path for a fake webcam.
 */
export async function launch({ camera = null, extraArgs = [], webgpu = true } = {}) {
  if (!process.env.XDG_RUNTIME_DIR) process.env.XDG_RUNTIME_DIR = tmpDir('xdg-');
  const args = [
    '--no-sandbox',
    ...(webgpu ? ['--enable-unsafe-webgpu'] : []),
    '--disable-background-networking',
    '--disable-component-update',
    ...extraArgs,
  ];
  if (camera) {
    args.push('--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', `--use-file-for-fake-video-capture=${camera}`);
  }
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args });
}

/** Collects console errors and page errors, for failure messages. */
export function recordConsole(page) {
  const log = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') log.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
  return log;
}

/** Waits until the page has classified and refreshed every panel `n` more times than `from`. */
export async function waitSettled(page, from, timeout = 120000) {
  await page.waitForFunction((n) => window.__resnet && window.__resnet.settled > n, from, { timeout, polling: 100 });
}

export async function settled(page) {
  return page.evaluate(() => (window.__resnet ? window.__resnet.settled : 0));
}

/** The demo weights from the page's own module (`page` on the server's origin), written to `file`. */
export async function writeDemoWeights(page, file) {
  const b64 = await page.evaluate(async () => {
    const { demoWeights } = await import('/js/index.js');
    const bytes = await demoWeights();
    let s = '';
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return btoa(s);
  });
  fs.writeFileSync(file, Buffer.from(b64, 'base64'));
}

/**
 * Runs the async function `fn` on `arg` in a module Worker that `page` makes
 * from a blob: URL (so `fn` must import by absolute URL): `{ ok: result }`
 * or `{ error }`.
 */
export function inWorker(page, fn, arg) {
  return page.evaluate(
    async ({ src, arg }) => {
      const code = `const fn = ${src}; onmessage = async (e) => { try { postMessage({ ok: await fn(e.data) }); } catch (err) { postMessage({ error: String((err && err.stack) || err) }); } };`;
      const w = new Worker(URL.createObjectURL(new Blob([code], { type: 'text/javascript' })), { type: 'module' });
      const r = await new Promise((resolve) => {
        w.onmessage = (e) => resolve(e.data);
        w.onerror = (e) => resolve({ error: e.message });
        w.postMessage(arg);
      });
      w.terminate();
      return r;
    },
    { src: fn.toString(), arg },
  );
}
