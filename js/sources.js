// Weights from any source: a URL (downloaded with progress, kept in the
// Cache API only once it parsed as weights of the announced length), bytes,
// or a File/Blob.
import { expect, expectAttached, resnetError } from './errors.js';

export const DEFAULT_CACHE = 'resnet-weights';

async function readStream(stream, total, onProgress) {
  const reader = stream.getReader();
  const chunks = [];
  let loaded = 0;
  onProgress?.(0, total);
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    onProgress?.(loaded, total || loaded);
  }
  const out = new Uint8Array(loaded);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** A download that receives nothing for this long is abandoned (ms; `stallTimeout`). */
const STALL_MS = 30000;

async function download(url, onProgress, stallMs = STALL_MS) {
  // Re-armed by every chunk: a connection that stalls fails instead of
  // leaving the caller (and a page's controls) waiting forever.
  const abort = new AbortController();
  let timer;
  const arm = () => {
    clearTimeout(timer);
    // Infinity: no limit. Timers take at most 2^31 − 1 ms (longer ones fire at once).
    if (stallMs !== Infinity) timer = setTimeout(() => abort.abort(new Error(`it stalled: no data for ${stallMs / 1000} s`)), Math.min(stallMs, 2 ** 31 - 1));
  };
  arm();
  try {
    let response;
    try {
      response = await fetch(url, { signal: abort.signal });
    } catch (e) {
      const why = abort.signal.aborted ? abort.signal.reason.message : e.message || e;
      throw resnetError('DOWNLOAD_FAILED', `could not download the weights from ${url}: ${why} (offline? try a local .safetensors file or the demo weights)`, { cause: e });
    }
    if (!response.ok) {
      throw resnetError('DOWNLOAD_FAILED', `downloading the weights from ${url} failed: HTTP ${response.status} ${response.statusText}`);
    }
    const total = Number(response.headers.get('content-length')) || 0;
    const progress = (loaded, all) => {
      arm();
      onProgress?.(loaded, all);
    };
    let bytes;
    try {
      bytes = response.body ? await readStream(response.body, total, progress) : new Uint8Array(await response.arrayBuffer());
    } catch (e) {
      const why = abort.signal.aborted ? abort.signal.reason.message : e.message || e;
      throw resnetError('DOWNLOAD_FAILED', `the download of ${url} was interrupted: ${why}`, { cause: e });
    }
    return checkLength(url, response, total, bytes);
  } finally {
    clearTimeout(timer);
  }
}

function checkLength(url, response, total, bytes) {
  // A compressed response announces its compressed length: compare only plain ones.
  if (total && !response.headers.get('content-encoding') && bytes.length !== total) {
    throw resnetError('DOWNLOAD_FAILED', `the download of ${url} was cut short: ${bytes.length} of ${total} bytes`);
  }
  return bytes;
}

/**
 * Weights from a URL, through the Cache API: `{ bytes, fromCache, keep(),
 * drop(), refetch() }`. `keep()` stores a download once the caller has
 * parsed it; `drop()` evicts a cached copy that did not parse, and
 * `refetch()` downloads it once more.
 */
async function fromUrl(url, { onProgress, cache = DEFAULT_CACHE, stallTimeout = STALL_MS } = {}) {
  expect(typeof stallTimeout === 'number' && stallTimeout > 0, `ResNet.load: stallTimeout must be a positive number of milliseconds (Infinity: no limit), got ${stallTimeout}`);
  expect(url.trim() !== '', 'ResNet.load: the weights URL is empty');
  const store = cache && globalThis.caches ? await globalThis.caches.open(cache).catch(() => null) : null;
  const cached = store ? await store.match(url).catch(() => undefined) : undefined;
  // A third argument, `{ fromCache }`, tells a caller (the page's status line)
  // where the bytes come from; callbacks that take two arguments are unaffected.
  const tell = (fromCache) => onProgress && ((loaded, total) => onProgress(loaded, total, { fromCache }));
  const fresh = async () => {
    const bytes = await download(url, tell(false), stallTimeout);
    return {
      bytes,
      fromCache: false,
      keep: async () => {
        // With its length, so that reading it back reports a real total.
        const headers = { 'content-type': 'application/octet-stream', 'content-length': String(bytes.byteLength) };
        await store?.put(url, new Response(bytes, { headers })).catch(() => {});
      },
      drop: async () => {},
      refetch: async () => null,
    };
  };
  if (!cached) return fresh();
  const total = Number(cached.headers.get('content-length')) || 0;
  const bytes = cached.body ? await readStream(cached.body, total, tell(true)) : new Uint8Array(await cached.arrayBuffer());
  return { bytes, fromCache: true, keep: async () => {}, drop: async () => void (await store.delete(url).catch(() => false)), refetch: fresh };
}

/** Any weights source → `{ bytes, fromCache, keep(), drop(), refetch() }`. */
export async function openWeights(source, options) {
  source = await source;
  const plain = (bytes) => ({ bytes, fromCache: false, keep: async () => {}, drop: async () => {}, refetch: async () => null });
  if (typeof source === 'string' || source instanceof URL) return fromUrl(String(source), options);
  if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) expectAttached(source.buffer ?? source, "ResNet.load: the weights' buffer");
  if (source instanceof Uint8Array) return plain(source);
  if (source instanceof ArrayBuffer) return plain(new Uint8Array(source));
  if (ArrayBuffer.isView(source)) return plain(new Uint8Array(source.buffer, source.byteOffset, source.byteLength));
  if (typeof Blob !== 'undefined' && source instanceof Blob) {
    return plain(source.stream ? await readStream(source.stream(), source.size, options?.onProgress) : new Uint8Array(await source.arrayBuffer()));
  }
  throw resnetError('BAD_INPUT', 'ResNet.load: the source must be a URL string, an ArrayBuffer, a Uint8Array, or a File/Blob of .safetensors weights');
}

/** Deletes the cached weights (the Cache API cache `name`); true if there was one. */
export async function clearWeightsCache(name = DEFAULT_CACHE) {
  if (!globalThis.caches) return false;
  return globalThis.caches.delete(name);
}
