//! Seeded, untrained demo weights: a small basic-block ResNet with
//! torchvision names, made on the spot so the page (and the tests) work
//! without a download. Its predictions mean nothing; the page says so.

use safetensors::Dtype;

/// One tensor before serialisation: name, dtype, shape, little-endian bytes.
pub use crate::weights::save::RawTensor;

/// The shape of a demo network.
#[derive(Debug, Clone)]
pub struct DemoSpec {
    pub seed: u64,
    pub stem: usize,
    /// (width, blocks) per stage; stages after the first halve the map.
    pub stages: Vec<(usize, usize)>,
    pub classes: usize,
}

impl Default for DemoSpec {
    /// ResNet-18's layout at a quarter of its width, 1000 classes (~1.3 M parameters).
    fn default() -> Self {
        DemoSpec { seed: 2026, stem: 16, stages: vec![(16, 2), (32, 2), (64, 2), (128, 2)], classes: 1000 }
    }
}

/// xorshift64*, so the same seed gives the same numbers everywhere (the demo
/// weights, and the tests' seeded data).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    /// `n` values uniform in [-1, 1).
    pub fn vec(&mut self, n: usize) -> Vec<f32> {
        self.scaled(n, 1.0, 0.0)
    }
    /// `n` values uniform in `offset ± scale`.
    pub fn scaled(&mut self, n: usize, scale: f32, offset: f32) -> Vec<f32> {
        (0..n).map(|_| offset + scale * self.uniform()).collect()
    }
}

fn f32_tensor(name: String, shape: Vec<usize>, data: Vec<f32>) -> RawTensor {
    crate::weights::save::f32_tensor(name, shape, &data)
}

#[allow(clippy::too_many_arguments)]
fn conv_bn(t: &mut Vec<RawTensor>, rng: &mut Rng, conv: &str, bn: &str, o: usize, i: usize, k: usize, last: bool) {
    // He-uniform: variance 2 / fan_in keeps activations of order 1 through ReLUs.
    let a = (6.0 / (i * k * k) as f32).sqrt();
    t.push(f32_tensor(format!("{conv}.weight"), vec![o, i, k, k], rng.scaled(o * i * k * k, a, 0.0)));
    // The last BN of a main path starts small, as in "zero-init residual" training.
    let g = if last { 0.3 } else { 1.0 };
    t.push(f32_tensor(format!("{bn}.weight"), vec![o], rng.scaled(o, 0.2 * g, g)));
    t.push(f32_tensor(format!("{bn}.bias"), vec![o], rng.scaled(o, 0.1, 0.0)));
    t.push(f32_tensor(format!("{bn}.running_mean"), vec![o], rng.scaled(o, 0.1, 0.0)));
    t.push(f32_tensor(format!("{bn}.running_var"), vec![o], rng.scaled(o, 0.25, 1.0)));
    t.push((format!("{bn}.num_batches_tracked"), Dtype::I64, vec![], 0i64.to_le_bytes().to_vec()));
}

/// The demo network's tensors, in torchvision names.
pub fn tensors(spec: &DemoSpec) -> Vec<RawTensor> {
    let mut rng = Rng::new(spec.seed);
    let mut t = Vec::new();
    conv_bn(&mut t, &mut rng, "conv1", "bn1", spec.stem, 3, 7, false);
    let mut c = spec.stem;
    for (s, &(width, blocks)) in spec.stages.iter().enumerate() {
        for b in 0..blocks {
            let p = format!("layer{}.{b}", s + 1);
            conv_bn(&mut t, &mut rng, &format!("{p}.conv1"), &format!("{p}.bn1"), width, c, 3, false);
            conv_bn(&mut t, &mut rng, &format!("{p}.conv2"), &format!("{p}.bn2"), width, width, 3, true);
            if b == 0 && (s > 0 || c != width) {
                conv_bn(&mut t, &mut rng, &format!("{p}.downsample.0"), &format!("{p}.downsample.1"), width, c, 1, false);
            }
            c = width;
        }
    }
    let a = (3.0 / c as f32).sqrt() * 4.0;
    t.push(f32_tensor("fc.weight".into(), vec![spec.classes, c], rng.scaled(spec.classes * c, a, 0.0)));
    t.push(f32_tensor("fc.bias".into(), vec![spec.classes], rng.scaled(spec.classes, 0.1, 0.0)));
    t
}

/// Tensors → `.safetensors` bytes.
pub fn serialize(tensors: &[RawTensor]) -> Vec<u8> {
    crate::weights::save::serialize(tensors, None)
}

/// The demo weights as a `.safetensors` file's bytes.
pub fn weights(spec: &DemoSpec) -> Vec<u8> {
    serialize(&tensors(spec))
}
