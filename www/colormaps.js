// Colour maps (lookup tables) and painting one feature map into a canvas.

// Polynomial fits of matplotlib's viridis and inferno (Matt Zucker, CC0).
const POLY = {
  viridis: [
    [0.2777273272234177, 0.005407344544966578, 0.3340998053353061],
    [0.1050930431085774, 1.404613529898575, 1.384590162594685],
    [-0.3308618287255563, 0.214847559468213, 0.09509516302823659],
    [-4.634230498983486, -5.799100973351585, -19.33244095627987],
    [6.228269936347081, 14.17993336680509, 56.69055260068105],
    [4.776384997670288, -13.74514537774601, -65.35303263337234],
    [-5.435455855934631, 4.645852612178535, 26.3124352495832],
  ],
  inferno: [
    [0.0002189403691192265, 0.001651004631001012, -0.01948089843709184],
    [0.1065134194856116, 0.5639564367884091, 3.932712388889277],
    [11.60249308247187, -3.972853965665698, -15.9423941062914],
    [-41.70399613139459, 17.43639888205313, 44.35414519872813],
    [77.162935699427, -33.40235894210092, -81.80730925738993],
    [-71.31942824499214, 32.62606426397723, 73.20951985803202],
    [25.13112622477341, -12.24266895238567, -23.07032500287172],
  ],
};

/** 256 RGB entries, flat. */
function makeLut(name) {
  const lut = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = i / 255;
    for (let c = 0; c < 3; c++) {
      let v;
      if (name === 'gray') v = t;
      else {
        const k = POLY[name];
        v = k[6][c];
        for (let j = 5; j >= 0; j--) v = v * t + k[j][c];
      }
      lut[i * 3 + c] = Math.round(Math.min(1, Math.max(0, v)) * 255);
    }
  }
  return lut;
}

export const LUTS = { viridis: makeLut('viridis'), inferno: makeLut('inferno'), gray: makeLut('gray') };

const picker = document.querySelector('#colormap-select');

/** The table picked under “Colour map”. */
export const currentLut = () => LUTS[picker.value] || LUTS.viridis;

// One canvas reused for every map: callers draw it (scaled) right away.
const scratch = document.createElement('canvas');
const scratchCtx = scratch.getContext('2d');

/**
 * Colour-maps one H×W map into the scratch canvas (own min..max, or `range`).
 * `alphaByValue`: transparent where low (for the class activation map).
 */
export function paintMap(data, offset, H, W, table, { range = null, alphaByValue = false } = {}) {
  let lo = Infinity;
  let hi = -Infinity;
  if (range) [lo, hi] = range;
  else {
    for (let i = 0; i < H * W; i++) {
      const v = data[offset + i];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  const span = hi - lo > 1e-12 ? hi - lo : 1;
  if (scratch.width !== W || scratch.height !== H) {
    scratch.width = W;
    scratch.height = H;
  }
  const img = scratchCtx.createImageData(W, H);
  const px = img.data;
  for (let i = 0; i < H * W; i++) {
    const t = Math.min(1, Math.max(0, (data[offset + i] - lo) / span));
    const k = Math.round(t * 255) * 3;
    px[i * 4] = table[k];
    px[i * 4 + 1] = table[k + 1];
    px[i * 4 + 2] = table[k + 2];
    px[i * 4 + 3] = alphaByValue ? Math.round(255 * Math.min(1, 1.3 * t * Math.sqrt(t))) : 255;
  }
  scratchCtx.putImageData(img, 0, 0);
  return scratch;
}
