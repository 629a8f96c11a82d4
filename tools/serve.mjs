#!/usr/bin/env node
// Zero-dependency static file server for the repository root (or another
// directory), bound to 127.0.0.1, for the browser page and its tests.
//
//   node tools/serve.mjs [PORT] [--root DIR]      (PORT also from $PORT; default 8080; 0 = any free port)
//
// Prints "serving DIR at http://127.0.0.1:PORT/www/" once it listens.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.cjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.wgsl': 'text/plain; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.ts': 'text/plain; charset=utf-8',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.y4m': 'video/x-yuv4mpeg',
  '.mp4': 'video/mp4',
  '.webm': 'video/webm',
  '.safetensors': 'application/octet-stream',
  '.bin': 'application/octet-stream',
};

function parseArgs(argv) {
  let port = process.env.PORT ?? '8080';
  let root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--root') root = path.resolve(argv[++i]);
    else if (a.startsWith('--root=')) root = path.resolve(a.slice(7));
    else if (a === '--port') port = argv[++i];
    else if (a.startsWith('--port=')) port = a.slice(7);
    else if (/^\d+$/.test(a)) port = a;
    else if (a === '-h' || a === '--help') {
      console.log('usage: node tools/serve.mjs [PORT] [--root DIR]');
      process.exit(0);
    } else {
      console.error(`serve.mjs: unknown argument ${a}`);
      process.exit(2);
    }
  }
  const n = Number(port);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    console.error(`serve.mjs: bad port ${port}`);
    process.exit(2);
  }
  return { port: n, root: fs.realpathSync(root) };
}

/** Resolves a URL path inside root, or null when it would leave it. */
function resolveInside(root, urlPath) {
  let decoded;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (decoded.includes('\0')) return null;
  const p = path.resolve(root, '.' + path.posix.normalize('/' + decoded));
  if (p !== root && !p.startsWith(root + path.sep)) return null;
  return p;
}

export function createServer(root) {
  return http.createServer((req, res) => {
    const send = (code, body, headers = {}) => {
      res.writeHead(code, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store', ...headers });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'method not allowed\n', { Allow: 'GET, HEAD' });
    const url = new URL(req.url, 'http://localhost');
    let file = resolveInside(root, url.pathname);
    if (!file) return send(403, 'forbidden\n');
    fs.stat(file, (err, st) => {
      if (!err && st.isDirectory()) {
        if (!url.pathname.endsWith('/')) return send(301, 'moved\n', { Location: url.pathname + '/' + url.search });
        file = path.join(file, 'index.html');
        return fs.stat(file, (err2, st2) => serveFile(err2, st2));
      }
      serveFile(err, st);
    });
    function serveFile(err, st) {
      if (err || !st.isFile()) return send(404, 'not found\n');
      // Symlinks may point outside the root: check the real path too.
      fs.realpath(file, (e, real) => {
        if (e || (real !== root && !real.startsWith(root + path.sep))) return send(403, 'forbidden\n');
        const type = MIME[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
        res.writeHead(200, {
          'Content-Type': type,
          'Content-Length': st.size,
          'Cache-Control': 'no-cache',
          'X-Content-Type-Options': 'nosniff',
        });
        if (req.method === 'HEAD') return res.end();
        const stream = fs.createReadStream(real);
        stream.on('error', () => res.destroy());
        stream.pipe(res);
      });
    }
  });
}

if (process.argv[1] && fs.realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { port, root } = parseArgs(process.argv.slice(2));
  const server = createServer(root);
  server.on('error', (e) => {
    console.error(`serve.mjs: ${e.message}`);
    process.exit(1);
  });
  server.listen(port, '127.0.0.1', () => {
    const { port: actual } = server.address();
    const sub = fs.existsSync(path.join(root, 'www')) ? 'www/' : '';
    console.log(`serving ${root} at http://127.0.0.1:${actual}/${sub}`);
  });
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
