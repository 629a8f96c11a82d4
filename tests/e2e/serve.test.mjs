// tools/serve.mjs: MIME types, index files, and no way out of its root.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { startServer, tmpDir } from './helpers.mjs';

/** A raw GET (the path is sent as is, unlike fetch, which normalises `..`). */
function get(base, rawPath, method = 'GET') {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ hostname, port, path: rawPath, method }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('tools/serve.mjs', () => {
  let root;
  let server;

  before(async () => {
    root = tmpDir('resnet-serve-');
    fs.mkdirSync(path.join(root, 'www'));
    fs.mkdirSync(path.join(root, 'pkg'));
    fs.writeFileSync(path.join(root, 'www/index.html'), '<!doctype html><title>t</title>');
    fs.writeFileSync(path.join(root, 'www/app.js'), 'export {};');
    fs.writeFileSync(path.join(root, 'www/m.mjs'), 'export {};');
    fs.writeFileSync(path.join(root, 'www/a b.txt'), 'spaced');
    fs.writeFileSync(path.join(root, 'pkg/x_bg.wasm'), Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
    fs.writeFileSync(path.join(root, 'w.safetensors'), Buffer.alloc(16));
    fs.writeFileSync(path.join(path.dirname(root), `${path.basename(root)}-secret.txt`), 'secret');
    fs.symlinkSync('/etc/hostname', path.join(root, 'www/escape'));
    server = await startServer({ root });
  });

  after(async () => {
    await server?.stop();
    fs.rmSync(root, { recursive: true, force: true });
    fs.rmSync(path.join(path.dirname(root), `${path.basename(root)}-secret.txt`), { force: true });
  });

  it('serves files with the right MIME types', async () => {
    const cases = {
      '/www/index.html': 'text/html',
      '/www/app.js': 'text/javascript',
      '/www/m.mjs': 'text/javascript',
      '/pkg/x_bg.wasm': 'application/wasm',
      '/w.safetensors': 'application/octet-stream',
    };
    for (const [p, type] of Object.entries(cases)) {
      const r = await get(server.url, p);
      assert.equal(r.status, 200, p);
      assert.ok(r.headers['content-type'].startsWith(type), `${p}: ${r.headers['content-type']}`);
    }
    const wasm = await get(server.url, '/pkg/x_bg.wasm');
    assert.deepEqual([...wasm.body.subarray(0, 4)], [0, 0x61, 0x73, 0x6d]);
    assert.equal((await get(server.url, '/www/a%20b.txt')).body.toString(), 'spaced');
  });

  it('serves index.html for directories and redirects without the slash', async () => {
    const r = await get(server.url, '/www/');
    assert.equal(r.status, 200);
    assert.match(r.body.toString(), /<title>t<\/title>/);
    const q = await get(server.url, '/www?model=demo');
    assert.equal(q.status, 301);
    assert.equal(q.headers.location, '/www/?model=demo');
    const h = await get(server.url, '/www/app.js', 'HEAD');
    assert.equal(h.status, 200);
    assert.equal(h.body.length, 0);
    assert.equal((await get(server.url, '/nope.js')).status, 404);
    assert.equal((await get(server.url, '/www/app.js', 'POST')).status, 405);
  });

  it('never serves anything outside its root', async () => {
    const secret = `${path.basename(root)}-secret.txt`;
    for (const p of [
      `/../${secret}`,
      `/www/../../${secret}`,
      `/%2e%2e/${secret}`,
      `/www/%2e%2e%2f%2e%2e%2f${secret}`,
      `/..%5c${secret}`,
      '/../../../../etc/passwd',
      '/%2e%2e/%2e%2e/%2e%2e/etc/passwd',
      '/www/escape',
      '/www/%00',
      '/%E0%A4%A',
    ]) {
      const r = await get(server.url, p);
      assert.ok([400, 403, 404].includes(r.status), `${p}: ${r.status}`);
      assert.doesNotMatch(r.body.toString(), /secret|root:/, p);
    }
  });
});
