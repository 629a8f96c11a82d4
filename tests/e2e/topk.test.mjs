// topIndices (js/index.js) against a full sort: random data with many ties,
// k from 0 past the length; NaN and k that is not a whole number.
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

test('topIndices ranks NaN last and takes k as a whole number within 0…length', () => {
  assert.deepEqual(topIndices([1, NaN, 3, 2], 2), [2, 3]);
  assert.deepEqual(topIndices([NaN, 1, NaN, -Infinity], 4), [1, 0, 2, 3], 'NaN ties with −∞, lower index first');
  assert.deepEqual(topIndices([NaN, NaN], 1), [0]);
  assert.deepEqual(topIndices([3, 1, 2], 2.7), [0, 2]);
  for (const k of [-1, 0, NaN, -Infinity]) assert.deepEqual(topIndices([3, 1, 2], k), [], `k ${k}`);
  assert.deepEqual(topIndices([3, 1, 2], Infinity), [0, 2, 1]);
  // A fraction once kept every index in an O(n²) insertion sort.
  const big = Float32Array.from({ length: 200000 }, (_, i) => i % 1000);
  const t0 = performance.now();
  assert.equal(topIndices(big, 5.5).length, 5);
  assert.ok(performance.now() - t0 < 2000, 'one pass, not a sort');
});
