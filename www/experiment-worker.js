// The residual experiment's training, off the page's thread: a dedicated
// module worker (wgpu runs there as on the main thread), so the page stays
// responsive however long a step takes. One worker serves every run.
//
// Messages in:  { run: options } | { stop: true }
// Messages out: { started: { blocks, steps, backend } } | { step: [residual, plain] }
//               | { done: { stopped, memory } } | { error: message }

let stop = null;

self.onmessage = async ({ data }) => {
  if (data.stop) {
    stop?.abort();
    return;
  }
  const controller = new AbortController();
  stop = controller;
  let ex = null;
  let api = null;
  try {
    api = await import('../js/index.js');
    ex = await api.experiment(data.run);
    self.postMessage({ started: { blocks: ex.blocks, steps: ex.steps, backend: ex.backend } });
    await ex.run({ signal: controller.signal, onStep: (records) => self.postMessage({ step: records }) });
    self.postMessage({ done: { stopped: false, memory: api.wasmMemoryBytes() } });
  } catch (e) {
    if (e?.name === 'AbortError') self.postMessage({ done: { stopped: true, memory: api?.wasmMemoryBytes() ?? 0 } });
    else self.postMessage({ error: e?.message ?? String(e) });
  } finally {
    ex?.dispose();
    if (stop === controller) stop = null;
  }
};
