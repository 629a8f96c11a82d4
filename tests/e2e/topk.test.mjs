// topIndices (js/index.js) against a full sort: random data with many ties,
// k from 0 past the length.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { topIndices } from '../../js/index.js';

test('topIndices equals sorting every index, ties to the lower index', () => {
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let t = 0; t < 500; t++) {
    const n = 1 + Math.floor(rand() * 60);
    const values = Float32Array.from({ length: n }, () => Math.floor(rand() * 7) - 3);
    const k = Math.floor(rand() * 10);
    const want = Array.from(values.keys()).sort((a, b) => values[b] - values[a] || a - b).slice(0, k);
    assert.deepEqual(topIndices(values, k), want, `values ${Array.from(values)}, k ${k}`);
  }
});
