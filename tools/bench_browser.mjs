// Browser benchmark driver (run through tools/bench_browser.sh): in one
// headless Chromium session, our engine (WebGPU, and the CPU backend) against
// onnxruntime-web's WebGPU and wasm execution providers on the same weights
// and input, each in a fresh page, one thread on the CPU side. Reports the
// median and spread of N timed runs after 2 warm-ups, the time from load to
// the first result, and whether the top-5 agree.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { launch, ROOT, startServer } from '../tests/e2e/helpers.mjs';

const { values: opt } = parseArgs({
  options: {
    runs: { type: 'string', default: '10' },
    nets: { type: 'string', default: 'resnet18,resnet50' },
    runtimes: { type: 'string', default: 'ours-webgpu,ort-webgpu,ours-cpu,ort-wasm' },
  },
});
const RUNS = Number(opt.runs);
const NETS = opt.nets.split(',');
const RUNTIMES = opt.runtimes.split(',');
const ORT = '/target/bench/node_modules/onnxruntime-web/dist/';

// Runs in the page: one runtime, one network.
async function benchInPage({ runtime, net, runs, ort }) {
  const input = new Float32Array(await (await fetch(`/target/bench/${net}/input.f32`)).arrayBuffer());
  const top5 = (logits) => Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a]).slice(0, 5);
  const t0 = performance.now();
  let run;
  let info = '';
  if (runtime.startsWith('ours')) {
    const { ResNet } = await import('/js/index.js');
    const backend = runtime === 'ours-cpu' ? 'cpu' : 'webgpu';
    const m = await ResNet.load(`/target/bench/${net}/weights.safetensors`, { cache: false, inputSize: 224, stats: false, backend });
    info = m.info.adapter;
    run = async () => (await m.classifyTensor(input)).logits;
  } else {
    const mod = await import(ort + (runtime === 'ort-webgpu' ? 'ort.webgpu.min.mjs' : 'ort.wasm.min.mjs'));
    mod.env.wasm.wasmPaths = ort;
    mod.env.wasm.numThreads = 1; // no cross-origin isolation here: one thread
    const ep = runtime === 'ort-webgpu' ? 'webgpu' : 'wasm';
    const s = await mod.InferenceSession.create(`/target/bench/${net}/model.onnx`, { executionProviders: [ep] });
    info = ep;
    const feeds = { input: new mod.Tensor('float32', input, [1, 3, 224, 224]) };
    run = async () => (await s.run(feeds)).logits.data;
  }
  const first = await run();
  const firstMs = performance.now() - t0;
  await run();
  const times = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await run();
    times.push(performance.now() - t);
  }
  return { info, firstMs, times, top5: top5(first) };
}

const stats = (t) => {
  const s = [...t].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * (s.length - 1) + 0.5))];
  return { median: q(0.5), min: s[0], max: s[s.length - 1], p10: q(0.1), p90: q(0.9) };
};

// The page's folders and the benchmark's (onnxruntime-web and its fixtures).
const server = await startServer({ root: ROOT, args: ['--allow', 'www,js,pkg,data,target/bench'] });
// The CPU runtimes in a browser without WebGPU, so no GPU process (SwiftShader
// here) competes with them for the cores.
const browser = await launch();
const cpuBrowser = await launch({ webgpu: false });
const results = [];
try {
  for (const net of NETS) {
    for (const runtime of RUNTIMES) {
      const onGpu = runtime.endsWith('webgpu');
      const page = await (onGpu ? browser : cpuBrowser).newPage();
      page.setDefaultTimeout(0);
      await page.goto(`${server.url}/js/index.d.ts`); // any page of the origin: modules load from it
      process.stderr.write(`bench: ${net} ${runtime} … `);
      try {
        const r = await page.evaluate(benchInPage, { runtime, net, runs: RUNS, ort: ORT });
        results.push({ net, runtime, ...r, ...stats(r.times) });
        process.stderr.write(`median ${stats(r.times).median.toFixed(1)} ms\n`);
      } catch (e) {
        results.push({ net, runtime, error: String(e.message || e).split('\n')[0] });
        process.stderr.write(`failed: ${e.message.split('\n')[0]}\n`);
      }
      await page.close();
    }
  }
} finally {
  await browser.close();
  await cpuBrowser.close();
  await server.stop();
}

const version = browser.version?.() ?? '';
const out = path.join(ROOT, 'target/bench/results.json');
fs.writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), browser: version, runs: RUNS, results }, null, 1));

const fmt = (v) => (v === undefined ? '–' : v.toFixed(0));
// Each runtime against ours on the same kind of device: WebGPU with WebGPU, the CPU with the CPU.
console.log(`| network | runtime | median ms | min–max ms | load → first result ms | ours ÷ it | top-5 = ours |`);
console.log(`|---|---|---|---|---|---|---|`);
for (const net of NETS) {
  for (const r of results.filter((x) => x.net === net)) {
    const peer = r.runtime.endsWith('webgpu') ? 'ours-webgpu' : 'ours-cpu';
    const ours = results.find((x) => x.net === net && x.runtime === peer);
    if (r.error) {
      console.log(`| ${net} | ${r.runtime} | failed: ${r.error} | | | | |`);
      continue;
    }
    const ratio = ours && !ours.error ? (ours.median / r.median).toFixed(2) : '–';
    const same = ours && !ours.error ? String(JSON.stringify(ours.top5) === JSON.stringify(r.top5)) : '–';
    console.log(`| ${net} | ${r.runtime} (${r.info}) | ${fmt(r.median)} | ${fmt(r.min)}–${fmt(r.max)} | ${fmt(r.firstMs)} | ${ratio} | ${same} |`);
  }
}
console.error(`bench: results in ${out}`);
