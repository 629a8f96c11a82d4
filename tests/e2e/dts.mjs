// A reader for the subset of TypeScript that js/index.d.ts is written in,
// and a checker of runtime values against it: the API test runs every call
// of the package and holds what each returns to the type index.d.ts declares.
//
// Understood: `export interface X [extends Y] { a: T; b?: T; }`, `export type
// X = T;`, `export declare class C { m(args): T; static m(...): T; readonly p: T; }`
// (`private` members are skipped), `export declare function f(args): T;`, and
// types made of string literals, `string`, `number`, `boolean`, `null`, `void`,
// typed-array and other class names, `T[]`, `[A, B]`, `{ a: T; b: U }`, `A | B`,
// `Promise<T>`.

/** Strips comments, keeping string literals intact. */
function stripComments(src) {
  return src.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/[^\n]*/g, '');
}

/** The text between the `{` at `open` and its matching `}`. */
function block(src, open) {
  let depth = 0;
  for (let i = open; i < src.length; i++) {
    if (src[i] === '{') depth++;
    else if (src[i] === '}' && --depth === 0) return src.slice(open + 1, i);
  }
  throw new Error('unbalanced braces in index.d.ts');
}

/** Splits at `sep` outside brackets, braces, parentheses and angle brackets. */
function splitTop(s, sep) {
  const out = [];
  let depth = 0;
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if ('([{<'.includes(c)) depth++;
    else if (')]}>'.includes(c) && !(c === '>' && s[i - 1] === '=')) depth--;
    if (depth === 0 && s.startsWith(sep, i)) {
      out.push(cur);
      cur = '';
      i += sep.length - 1;
    } else cur += c;
  }
  out.push(cur);
  return out.map((x) => x.trim()).filter((x) => x.length);
}

/** `a: T; b?: U` → [{ name, optional, type }]. Method signatures are kept as `(…) => T`; `private` members are left out. */
function members(body) {
  const declared = splitTop(body, ';').filter((m) => !/^private\s/.test(m));
  return declared.map((m) => {
    const method = m.match(/^(?:static\s+|readonly\s+)*(\w+)\s*(\(.*?\))\s*:\s*([\s\S]+)$/);
    if (method) return { name: method[1], optional: false, type: method[3].trim(), method: true, static: /^static\s/.test(m) };
    const field = m.match(/^(?:readonly\s+)?(\w+)(\?)?\s*:\s*([\s\S]+)$/);
    if (!field) throw new Error(`cannot read member: ${m}`);
    return { name: field[1], optional: !!field[2], type: field[3].trim() };
  });
}

/** Parses index.d.ts into { interfaces, types, classes, functions }. */
export function parseDts(src) {
  src = stripComments(src);
  const interfaces = {};
  const types = {};
  const classes = {};
  const functions = {};
  for (const m of src.matchAll(/export\s+interface\s+(\w+)(?:\s+extends\s+(\w+))?\s*\{/g)) {
    interfaces[m[1]] = { extends: m[2] ?? null, members: members(block(src, m.index + m[0].length - 1)) };
  }
  for (const m of src.matchAll(/export\s+type\s+(\w+)\s*=\s*([^;]+);/g)) types[m[1]] = m[2].trim();
  for (const m of src.matchAll(/export\s+declare\s+class\s+(\w+)\s*\{/g)) {
    classes[m[1]] = members(block(src, m.index + m[0].length - 1));
  }
  for (const m of src.matchAll(/export\s+declare\s+function\s+(\w+)\s*\(([^)]*)\)\s*:/g)) {
    functions[m[1]] = splitTop(src.slice(m.index + m[0].length), ';')[0];
  }
  return { interfaces, types, classes, functions };
}

/**
 * Checks `v` (as described by `describe` in the page: typed arrays become
 * `{ $typed: 'Float32Array', length }`, class instances `{ $class: name }`)
 * against `type`. Returns a list of problems, empty when it fits.
 */
export function check(dts, type, v, at = 'value') {
  type = type.trim();
  const alts = splitTop(type, '|');
  if (alts.length > 1) {
    const tries = alts.map((t) => check(dts, t, v, at));
    return tries.some((p) => p.length === 0) ? [] : [`${at}: ${JSON.stringify(v)?.slice(0, 80)} is none of ${type}`];
  }
  if (/^'.*'$/.test(type)) return v === type.slice(1, -1) ? [] : [`${at}: ${JSON.stringify(v)} is not ${type}`];
  if (['string', 'number', 'boolean'].includes(type)) return typeof v === type ? [] : [`${at}: ${JSON.stringify(v)} is not a ${type}`];
  if (type === 'null' || type === 'void' || type === 'undefined') return v === null || v === undefined ? [] : [`${at}: expected ${type}`];
  const promise = type.match(/^Promise<([\s\S]+)>$/);
  if (promise) return check(dts, promise[1], v, at);
  if (type.endsWith('[]')) {
    if (!Array.isArray(v)) return [`${at}: not an array (${type})`];
    return v.flatMap((x, i) => check(dts, type.slice(0, -2), x, `${at}[${i}]`));
  }
  if (type.startsWith('[')) {
    const parts = splitTop(type.slice(1, -1), ',');
    if (!Array.isArray(v) || v.length !== parts.length) return [`${at}: not a ${type}`];
    return parts.flatMap((t, i) => check(dts, t, v[i], `${at}[${i}]`));
  }
  if (type.startsWith('{')) return checkObject(dts, members(type.slice(1, -1)), v, at, type);
  if (/Array$/.test(type) && v && v.$typed) return v.$typed === type ? [] : [`${at}: a ${v.$typed}, not a ${type}`];
  if (dts.types[type]) return check(dts, dts.types[type], v, at);
  if (dts.interfaces[type]) return checkObject(dts, allMembers(dts, type), v, at, type);
  if (v && v.$class) return v.$class === type ? [] : [`${at}: a ${v.$class}, not a ${type}`];
  return [`${at}: type ${type} is not understood by tests/e2e/dts.mjs`];
}

/** An interface's members, its parents' included (Error's: name, message). */
function allMembers(dts, name) {
  const i = dts.interfaces[name];
  const own = i.members;
  if (i.extends === 'Error') return [{ name: 'message', optional: false, type: 'string' }, ...own.filter((m) => m.name !== 'message')];
  return i.extends ? [...allMembers(dts, i.extends).filter((m) => !own.some((o) => o.name === m.name)), ...own] : own;
}

function checkObject(dts, ms, v, at, type) {
  if (!v || typeof v !== 'object' || Array.isArray(v) || v.$typed) return [`${at}: not an object (${type})`];
  const problems = [];
  for (const m of ms) {
    if (!(m.name in v)) {
      if (!m.optional) problems.push(`${at}.${m.name}: missing (${type})`);
      continue;
    }
    problems.push(...check(dts, m.type, v[m.name], `${at}.${m.name}`));
  }
  for (const k of Object.keys(v)) {
    if (k !== 'stack' && !ms.some((m) => m.name === k)) problems.push(`${at}.${k}: not declared in ${type}`);
  }
  return problems;
}
