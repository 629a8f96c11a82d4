// The package's API against its types: every function and method that
// js/index.d.ts declares is called in Chromium on the demo network, and what
// each returns (or throws) must be exactly what index.d.ts says — the same
// fields, no undeclared ones, the declared types. Keeps the hand-written
// types from drifting from the objects the wasm bindings build.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, launch, missingPrerequisite, recordConsole, startServer } from './helpers.mjs';
import { check, parseDts } from './dts.mjs';

const missing = missingPrerequisite();
if (missing) throw new Error(missing);
const dts = parseDts(fs.readFileSync(path.join(ROOT, 'js/index.d.ts'), 'utf8'));

/** Runs in the page: calls everything, returns [kind, name, described value]. */
async function exercise() {
  const api = await import('/js/index.js');
  const describe = (v) => {
    if (v instanceof Error) return { name: v.name, message: v.message, ...('code' in v ? { code: v.code } : {}) };
    if (ArrayBuffer.isView(v)) return { $typed: v.constructor.name, length: v.length };
    if (v instanceof api.ResNet) return { $class: 'ResNet' };
    if (v instanceof api.Trainer) return { $class: 'Trainer' };
    if (v instanceof api.Experiment) return { $class: 'Experiment' };
    if (Array.isArray(v)) return v.map(describe);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, describe(x)]));
    return v === undefined ? null : v;
  };
  const out = [];
  const rec = (kind, name, v) => {
    out.push([kind, name, describe(v)]);
    return v;
  };
  const thrown = async (kind, name, f) => {
    try {
      await f();
      out.push([kind, name, 'did not throw']);
    } catch (e) {
      out.push([kind, name, describe(e)]);
    }
  };
  rec('function', 'resnetError', api.resnetError('BAD_INPUT', 'test'));
  const bytes = rec('function', 'demoWeights', await api.demoWeights());
  rec('function', 'topIndices', api.topIndices([3, 1, 4, 1, 5], 2));
  rec('function', 'webgpuSupport', await api.webgpuSupport());
  const labels = rec('function', 'imagenetClasses', await api.imagenetClasses());
  rec('function', 'clearWeightsCache', await api.clearWeightsCache('resnet-api-test'));
  rec('function', 'wasmMemoryBytes', api.wasmMemoryBytes());
  const m = rec('static', 'load', await api.ResNet.load(bytes, { inputSize: [64, 72], labels, mode: 'inspect' }));
  rec('method', 'info', m.info);
  rec('method', 'labels', m.labels);
  rec('method', 'crop', m.crop(640, 480));
  const canvas = document.createElement('canvas');
  canvas.width = 90;
  canvas.height = 70;
  canvas.getContext('2d').fillRect(10, 10, 30, 30);
  rec('method', 'classify', await m.classify(canvas, { topk: 3 }));
  rec('method', 'classifyTensor', await m.classifyTensor(new Float32Array(3 * 64 * 72).fill(0.25)));
  const blocks = rec('method', 'blocks', m.blocks());
  rec('method', 'activation', await m.activation(blocks[1].name, { channels: [0, 2] }));
  rec('method', 'channelMeans', m.channelMeans(blocks[1].name));
  rec('method', 'residuals', m.residuals());
  const identity = blocks.find((b) => b.kind === 'identity').name;
  rec('method', 'setBlockEnabled', m.setBlockEnabled(identity, false));
  rec('method', 'blockEnabled', m.blockEnabled(identity));
  rec('method', 'timings', m.timings());
  rec('method', 'classActivationMap', await m.classActivationMap(5));
  // Training: a trainer, its examples, a fit, and the model answering after it.
  const t = rec('method', 'trainer', await m.trainer({ classes: ['dark', 'light'], seed: 1 }));
  rec('trainer', 'classes', t.classes);
  rec('trainer', 'backend', t.backend);
  rec('trainer', 'add', await t.add(canvas, 0));
  rec('trainer', 'addTensor', await t.addTensor(new Float32Array(3 * 64 * 72).fill(0.5), 1));
  rec('trainer', 'addTensor', await t.addTensor(new Float32Array(3 * 64 * 72).fill(-0.5), 0));
  rec('trainer', 'remove', await t.remove(2));
  rec('trainer', 'count', t.count());
  rec('trainer', 'fit', await t.fit({ epochs: 2, batchSize: 2, validationSplit: 0.5, onStep: () => {}, onEpoch: () => {} }));
  rec('trainer', 'gradientNorms', t.gradientNorms());
  rec('trainer', 'validation', t.validation());
  rec('method', 'exportWeights', await m.exportWeights());
  rec('trainer', 'dispose', t.dispose());
  rec('method', 'setInputSize', await m.setInputSize(48));
  // The residual experiment: two small networks, a few steps.
  rec('function', 'digitsDataset', await api.digitsDataset());
  const ex = rec('function', 'experiment', await api.experiment({ depth: 8, trainExamples: 64, batchSize: 32, epochs: 2, evalEvery: 2, backend: 'cpu' }));
  rec('experiment', 'blocks', ex.blocks);
  rec('experiment', 'steps', ex.steps);
  rec('experiment', 'backend', ex.backend);
  rec('experiment', 'step', await ex.step());
  rec('experiment', 'run', await ex.run({ onStep: () => {} }));
  rec('experiment', 'step', await ex.step());
  rec('experiment', 'history', ex.history);
  rec('experiment', 'exportWeights', ex.exportWeights('residual'));
  rec('experiment', 'dispose', ex.dispose());
  await thrown('error', 'classify before load of a bad file', () => api.ResNet.load(new Uint8Array([1, 2, 3])));
  rec('method', 'dispose', m.dispose());
  await thrown('error', 'classify after dispose', () => m.classify(canvas));
  return out;
}

/** The declared return type of each call, from index.d.ts. */
function declared(kind, name) {
  if (kind === 'function') return dts.functions[name];
  if (kind === 'error') return 'ResNetError';
  const member = dts.classes[{ trainer: 'Trainer', experiment: 'Experiment' }[kind] ?? 'ResNet'].find((m) => m.name === name);
  return member?.type;
}

describe('the npm package API against js/index.d.ts', () => {
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

  it('returns exactly the declared types from every function and method', { timeout: 240000 }, async () => {
    assert.ok(Object.keys(dts.interfaces).length >= 10 && dts.classes.ResNet?.length >= 15, 'index.d.ts was read');
    const page = await browser.newPage();
    const log = recordConsole(page);
    // Any document of the server's origin can import the package.
    await page.goto(`${server.url}/js/index.d.ts`);
    const calls = await page.evaluate(exercise).catch((e) => assert.fail(`${e.message}\n${log.join('\n')}`));
    const problems = [];
    for (const [kind, name, value] of calls) {
      const type = declared(kind, name);
      if (!type) problems.push(`${kind} ${name}: not declared in index.d.ts`);
      else problems.push(...check(dts, type, value, `${name}()`));
    }
    assert.deepEqual(problems, []);
    // Every declared function and method was exercised.
    const called = new Set(calls.map((c) => c[1]));
    const declaredNames = [...Object.keys(dts.functions), ...['ResNet', 'Trainer', 'Experiment'].flatMap((c) => dts.classes[c].map((m) => m.name))];
    assert.deepEqual(declaredNames.filter((n) => !called.has(n)), []);
    // The errors carry the codes a program tells apart.
    const errors = Object.fromEntries(calls.filter((c) => c[0] === 'error').map((c) => [c[1], c[2].code]));
    assert.deepEqual(errors, { 'classify before load of a bad file': 'BAD_WEIGHTS', 'classify after dispose': 'DISPOSED' });
    await page.close();
  });

  it('reads index.d.ts as declared (the checker itself)', () => {
    assert.deepEqual(check(dts, 'Rect', { x: 1, y: 2, width: 3, height: 4 }), []);
    assert.equal(check(dts, 'Rect', { x: 1, y: 2, width: 3 }).length, 1, 'a missing field');
    assert.equal(check(dts, 'Rect', { x: 1, y: 2, width: 3, height: 4, z: 0 }).length, 1, 'an extra field');
    assert.equal(check(dts, 'BlockInfo', { name: 'a', stage: 1, kind: 'nope', shape: [1, 2, 3] }).length, 1, 'a wrong literal');
    assert.deepEqual(check(dts, 'Timings', { source: 'gpu', stages: [{ name: 's', ms: 1 }], totalMs: 1 }), []);
    assert.equal(check(dts, 'Activation', { shape: [1, 2, 3], data: { $typed: 'Uint8Array', length: 3 } }).length, 1, 'a wrong typed array');
  });
});
