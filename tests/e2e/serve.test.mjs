// tools/serve.mjs: MIME types, index files, and no way out of its root.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import net from 'node:net';
import { ROOT, startServer, tmpDir } from './helpers.mjs';

/** A raw GET (the path is sent as is, unlike fetch, which normalises `..`). */
function get(base, rawPath, method = 'GET', headers = {}) {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ hostname, port, path: rawPath, method, headers }, (res) => {
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
    fs.mkdirSync(path.join(root, '.git'));
    fs.writeFileSync(path.join(root, '.git/config'), '[core] secret');
    fs.writeFileSync(path.join(root, 'www/.env'), 'TOKEN=secret');
    fs.writeFileSync(path.join(path.dirname(root), `${path.basename(root)}-secret.txt`), 'secret');
    fs.symlinkSync('/etc/hostname', path.join(root, 'www/escape'));
    server = await startServer({ root, args: ['--headers-timeout', '500'] });
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
      '/.git/config',
      '/www/.env',
      '/www/%2eenv',
      '/www/x/../.env',
    ]) {
      const r = await get(server.url, p);
      assert.ok([400, 403, 404].includes(r.status), `${p}: ${r.status}`);
      assert.doesNotMatch(r.body.toString(), /secret|root:/, p);
    }
  });

  it('answers only to its own Host (no DNS rebinding)', async () => {
    const port = new URL(server.url).port;
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`]) {
      assert.equal((await get(server.url, '/www/app.js', 'GET', { host })).status, 200, host);
    }
    for (const host of [`evil.example:${port}`, 'evil.example', `127.0.0.1:${Number(port) + 1}`]) {
      const r = await get(server.url, '/www/app.js', 'GET', { host });
      assert.equal(r.status, 421, host);
      assert.doesNotMatch(r.body.toString(), /export/, host);
    }
  });

  it('closes a connection that never finishes its headers', async () => {
    const { hostname, port } = new URL(server.url);
    const t0 = Date.now();
    const closed = await new Promise((resolve) => {
      const s = net.connect({ host: hostname, port }, () => s.write('GET /www/app.js HTTP/1.1\r\nHost: x\r\n'));
      s.resume(); // read what the server sends, so its closing is seen
      s.on('close', () => resolve(Date.now() - t0));
      s.on('error', () => {});
      setTimeout(() => resolve(null), 8000);
    });
    assert.ok(closed !== null && closed < 5000, `still open after ${closed ?? 8000} ms`);
  });
});

describe('tools/serve.mjs on the repository', () => {
  let server;
  before(async () => {
    server = await startServer({ root: ROOT });
  });
  after(async () => server?.stop());

  it('serves only what the page needs', async () => {
    for (const p of ['/www/', '/www/app.js', '/js/index.js', '/data/imagenet_classes.txt', '/pkg/resnet_wgpu.js']) {
      assert.equal((await get(server.url, p)).status, 200, p);
    }
    for (const p of ['/.git/config', '/.gitignore', '/Cargo.toml', '/README.md', '/src/lib.rs', '/tools/serve.mjs', '/tests/e2e/helpers.mjs', '/.venv/pyvenv.cfg', '/node_modules/vite/package.json', '/target/release/resnet']) {
      const r = await get(server.url, p);
      assert.equal(r.status, 404, p);
    }
    const root = await get(server.url, '/');
    assert.equal(root.status, 302);
    assert.equal(root.headers.location, '/www/');
  });
});
