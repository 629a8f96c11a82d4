// Training step time in Chromium (the npm package's trainer: wasm, one
// thread, or with --backend webgpu our WGSL kernels on WebGPU, SwiftShader
// here), on the weights tools/bench_train.py writes (seeded ResNet-18/50
// with torchvision names): `train: 'all'`, batch normalisation in batch
// mode, SGD, batch B at S×S (B classes, one example each: every class of a
// trainer needs one). Reports the median step after the first.
// A benchmark, not a test:
//   .venv/bin/python tools/bench_train.py --write-only target/bench-train
//   node tools/bench_train_browser.mjs [--configs resnet18:8:224,...] [--steps 3] [--backend cpu|webgpu]
import { parseArgs } from 'node:util';
import { launch, ROOT, startServer } from '../tests/e2e/helpers.mjs';

const { values: opt } = parseArgs({
  options: { configs: { type: 'string', default: 'resnet18:8:224,resnet18:32:112' }, steps: { type: 'string', default: '3' }, backend: { type: 'string', default: 'cpu' } },
});

async function inPage({ net, batch, size, steps, backend }) {
  const { ResNet } = await import('/js/index.js');
  const m = await ResNet.load(`/target/bench-train/${net}.safetensors`, { cache: false, inputSize: size, stats: false, backend });
  const t = await m.trainer({ classes: Array.from({ length: batch }, (_, i) => `c${i}`), train: 'all', bn: 'batch', optimizer: 'sgd', learningRate: 0.01, memoryLimitMB: 4096, backend });
  let seed = 1;
  const x = new Float32Array(3 * size * size);
  for (let i = 0; i < batch; i++) {
    for (let j = 0; j < x.length; j++) x[j] = ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
    await t.addTensor(x, i);
  }
  const times = [];
  let last = performance.now();
  await t.fit({
    epochs: steps + 1,
    batchSize: batch,
    onStep: () => {
      const now = performance.now();
      times.push(now - last);
      last = now;
    },
  });
  const later = times.slice(1).sort((a, b) => a - b);
  return { median: later[Math.floor(later.length / 2)], first: times[0], memory: performance.memory?.usedJSHeapSize ?? null };
}

const server = await startServer({ root: ROOT, args: ['--allow', 'www,js,pkg,data,target/bench-train'] });
const browser = await launch({ webgpu: opt.backend === 'webgpu' });
console.log(`| network | batch | size | ${opt.backend === 'webgpu' ? 'WebGPU' : 'wasm'} step (ms) |`);
console.log('|---|---|---|---|');
for (const c of opt.configs.split(',')) {
  const [net, batch, size] = c.split(':');
  const page = await browser.newPage();
  await page.goto(`${server.url}/js/index.d.ts`);
  const r = await page.evaluate(inPage, { net, batch: Number(batch), size: Number(size), steps: Number(opt.steps), backend: opt.backend });
  console.log(`| ${net} | ${batch} | ${size} | ${r.median.toFixed(0)} |`);
  await page.close();
}
await browser.close();
await server.stop();
