#!/usr/bin/env node
// Zero-dependency static file server for the page and its tests, bound to
// 127.0.0.1. It serves only what the page needs: from the repository, the
// folders www, js, pkg and data (`--allow` changes the list); from another
// root (`--root DIR`, e.g. a built app), everything. Never dotfiles, never a
// path outside the root (symlinks included); only requests whose Host is this
// server (no DNS rebinding); connections that never finish their headers are
// closed after `--headers-timeout` ms.
//
//   node tools/serve.mjs [PORT] [--root DIR] [--allow www,js,pkg,data] [--headers-timeout 10000]
//   (PORT also from $PORT; default 8080; 0 = any free port)
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

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** What the page needs from the repository. */
const PAGE_FOLDERS = ['www', 'js', 'pkg', 'data'];

function parseArgs(argv) {
  const opts = { '--port': process.env.PORT ?? '8080', '--root': REPO, '--allow': null, '--headers-timeout': '10000' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const flag = a.split('=')[0];
    if (flag in opts) opts[flag] = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
    else if (/^\d+$/.test(a)) opts['--port'] = a;
    else if (a === '-h' || a === '--help') {
      console.log('usage: node tools/serve.mjs [PORT] [--root DIR] [--allow www,js,pkg,data] [--headers-timeout MS]');
      process.exit(0);
    } else {
      console.error(`serve.mjs: unknown argument ${a}`);
      process.exit(2);
    }
  }
  const port = opts['--port'];
  const headersTimeout = Number(opts['--headers-timeout']);
  const n = Number(port);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    console.error(`serve.mjs: bad port ${port}`);
    process.exit(2);
  }
  if (!Number.isInteger(headersTimeout) || headersTimeout < 100) {
    console.error(`serve.mjs: bad --headers-timeout ${headersTimeout}`);
    process.exit(2);
  }
  const root = fs.realpathSync(path.resolve(opts['--root']));
  // The repository: only the page's folders, unless told otherwise.
  const allow = opts['--allow']?.split(',').filter(Boolean) ?? (root === fs.realpathSync(REPO) ? PAGE_FOLDERS : null);
  return { port: n, root, allow, headersTimeout };
}

/**
 * Resolves a URL path inside root, or null when it would leave it, name a
 * dotfile, or fall outside `allow` (top-level folders; null: anything).
 */
function resolveInside(root, urlPath, allow) {
  let decoded;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (decoded.includes('\0') || decoded.includes('\\')) return null;
  const rel = path.posix.normalize('/' + decoded).slice(1);
  const parts = rel.split('/').filter(Boolean);
  if (parts.some((p) => p.startsWith('.'))) return null;
  if (allow && !allow.some((a) => rel === a || rel.startsWith(a.replace(/\/$/, '') + '/'))) return null;
  const p = path.resolve(root, rel);
  if (p !== root && !p.startsWith(root + path.sep)) return null;
  return p;
}

/** The Host headers this server answers to, once it listens on `port`. */
function hostsFor(port) {
  return new Set([`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`]);
}

export function createServer(root, { allow = null, headersTimeout = 10000 } = {}) {
  let hosts = null;
  const server = http.createServer({ headersTimeout, requestTimeout: headersTimeout * 3, connectionsCheckingInterval: Math.min(1000, headersTimeout) }, (req, res) => {
    const send = (code, body, headers = {}) => {
      res.writeHead(code, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store', ...headers });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    // DNS rebinding: a page on another name that resolves here is refused.
    hosts ??= hostsFor(server.address().port);
    if (!hosts.has(String(req.headers.host).toLowerCase())) return send(421, 'unexpected Host header\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'method not allowed\n', { Allow: 'GET, HEAD' });
    const url = new URL(req.url, 'http://localhost');
    if (allow && url.pathname === '/') return send(302, 'see /www/\n', { Location: '/www/' });
    let file = resolveInside(root, url.pathname, allow);
    if (!file) return send(404, 'not found\n');
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
  return server;
}

if (process.argv[1] && fs.realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { port, root, allow, headersTimeout } = parseArgs(process.argv.slice(2));
  const server = createServer(root, { allow, headersTimeout });
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
