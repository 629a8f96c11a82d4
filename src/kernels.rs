//! The GPU kernels: one WGSL file each under `shaders/`, compiled once per
//! device, and the code that binds buffers to them.
//!
//! A [`Dispatch`] is a kernel with its buffers and parameters bound; the
//! planner builds all of a network's dispatches once, and each frame only
//! records them into one compute pass.

use bytemuck::{Pod, Zeroable};
use wgpu::util::DeviceExt;

/// Workgroup width of the elementwise and conv shaders.
const WG: u32 = 64;

pub struct Kernels {
    conv2d: wgpu::ComputePipeline,
    conv2d_gemm: wgpu::ComputePipeline,
    /// The same shader specialised for 1×1 stride-1 unpadded convs (POINTWISE).
    conv2d_gemm_pw: wgpu::ComputePipeline,
    /// The GEMM writing f32 split-K partial sums (the same pipelines in f32).
    conv2d_gemm_split: wgpu::ComputePipeline,
    conv2d_gemm_split_pw: wgpu::ComputePipeline,
    conv_splitk: wgpu::ComputePipeline,
    precision: Precision,
    batchnorm: wgpu::ComputePipeline,
    add_relu: wgpu::ComputePipeline,
    relu: wgpu::ComputePipeline,
    maxpool: wgpu::ComputePipeline,
    global_avg_pool: wgpu::ComputePipeline,
    dense: wgpu::ComputePipeline,
    softmax: wgpu::ComputePipeline,
    preprocess: wgpu::ComputePipeline,
    sum_squares: wgpu::ComputePipeline,
    /// Bound where a kernel's optional input (bias, residual) is absent.
    dummy: wgpu::Buffer,
    /// The same for an optional output (a buffer cannot be bound both ways).
    dummy_out: wgpu::Buffer,
}

/// Every kernel's WGSL source, by file name (the tests validate them all).
pub const SHADERS: &[(&str, &str)] = &[
    ("conv2d.wgsl", include_str!("../shaders/conv2d.wgsl")),
    ("conv2d_gemm.wgsl", include_str!("../shaders/conv2d_gemm.wgsl")),
    ("conv_splitk.wgsl", include_str!("../shaders/conv_splitk.wgsl")),
    ("batchnorm.wgsl", include_str!("../shaders/batchnorm.wgsl")),
    ("add_relu.wgsl", include_str!("../shaders/add_relu.wgsl")),
    ("relu.wgsl", include_str!("../shaders/relu.wgsl")),
    ("maxpool.wgsl", include_str!("../shaders/maxpool.wgsl")),
    ("global_avg_pool.wgsl", include_str!("../shaders/global_avg_pool.wgsl")),
    ("dense.wgsl", include_str!("../shaders/dense.wgsl")),
    ("softmax.wgsl", include_str!("../shaders/softmax.wgsl")),
    ("preprocess.wgsl", include_str!("../shaders/preprocess.wgsl")),
    ("sum_squares.wgsl", include_str!("../shaders/sum_squares.wgsl")),
];

/// The conv epilogue (bias, F(x) copy, residual, ReLU), appended to the
/// shaders that use it: WGSL has no includes.
pub const CONV_EPILOGUE: (&str, &str) = ("conv_epilogue.wgsl", include_str!("../shaders/conv_epilogue.wgsl"));
const USES_EPILOGUE: &[&str] = &["conv2d.wgsl", "conv2d_gemm.wgsl", "conv_splitk.wgsl"];

/// A shader's WGSL, with the shared epilogue where it uses it. Natively,
/// `RESNET_SHADER_DIR` may name a folder whose files replace the built-in
/// ones of the same name: kernel variants can then be timed with one
/// `resnet bench` binary (tools/bench_gpu.sh does).
fn source(name: &str) -> std::borrow::Cow<'static, str> {
    let file = |name: &str| -> std::borrow::Cow<'static, str> {
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(text) = std::env::var_os("RESNET_SHADER_DIR").and_then(|d| std::fs::read_to_string(std::path::Path::new(&d).join(name)).ok()) {
            return text.into();
        }
        SHADERS.iter().chain([&CONV_EPILOGUE]).find(|(n, _)| *n == name).map(|(_, s)| *s).expect("known shader").into()
    };
    if USES_EPILOGUE.contains(&name) {
        format!("{}\n{}", file(name), file(CONV_EPILOGUE.0)).into()
    } else {
        file(name)
    }
}

/// How activations and conv weights are stored in fast mode. Arithmetic is
/// f32 either way (products are summed in f32).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    F32,
    /// Half the bytes; needs the adapter's `shader-f16`.
    F16,
}

impl Precision {
    pub fn parse(s: &str) -> Option<Precision> {
        match s {
            "f32" => Some(Precision::F32),
            "f16" => Some(Precision::F16),
            _ => None,
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        }
    }
    /// Bytes per stored activation or weight.
    pub fn bytes(&self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::F16 => 2,
        }
    }
}

/// A shader's source for a precision: the f16 variant switches the storage
/// aliases (`act`, `wt`) to f16; `partials` makes the GEMM write f32.
fn specialise(src: std::borrow::Cow<'static, str>, precision: Precision, partials: bool) -> std::borrow::Cow<'static, str> {
    if precision == Precision::F32 && !partials {
        return src;
    }
    let mut s = src.into_owned();
    if partials {
        s = s.replace("alias out_t = act;", "alias out_t = f32;");
    }
    if precision == Precision::F16 {
        s = format!("enable f16;\n{}", s.replace("alias act = f32;", "alias act = f16;").replace("alias wt = f32;", "alias wt = f16;"));
    }
    s.into()
}

/// Every shader's source after [`specialise`] (the tests validate them all).
pub fn specialised_sources() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, _) in SHADERS {
        for precision in [Precision::F32, Precision::F16] {
            for partials in [false, true] {
                out.push((format!("{name} ({}, partials: {partials})", precision.as_str()), specialise(source(name), precision, partials).into_owned()));
            }
        }
    }
    out
}

/// A kernel with everything bound: ready to be recorded, any number of times.
pub struct Dispatch {
    pub label: String,
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    /// The kernel's uniform block, rewritable per frame (`queue.write_buffer`).
    params: wgpu::Buffer,
    workgroups: [u32; 3],
    /// A second kernel recorded right after this one (split-K's reduction).
    then: Option<Box<Dispatch>>,
}

impl Dispatch {
    pub fn params(&self) -> &wgpu::Buffer {
        &self.params
    }

    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.workgroups[0], self.workgroups[1], self.workgroups[2]);
        if let Some(next) = &self.then {
            next.record(pass);
        }
    }
}

/// Spreads `n` workgroups over x and y so no axis exceeds 65535; the shaders
/// rebuild the flat index from `num_workgroups`.
fn grid(n: u32) -> [u32; 3] {
    let n = n.max(1);
    let x = n.min(65535);
    [x, n.div_ceil(x), 1]
}

fn grid_for(invocations: usize) -> [u32; 3] {
    grid((invocations as u32).div_ceil(WG))
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct ConvParams {
    pub in_c: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub out_c: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub k_h: u32,
    pub k_w: u32,
    pub stride: u32,
    pub pad_y: u32,
    pub pad_x: u32,
    pub flags: u32,
    pub co_groups: u32,
    /// Split-K slice length (set by the kernel functions).
    pub k_split: u32,
    pub _pad: [u32; 2],
}

impl ConvParams {
    pub const HAS_BIAS: u32 = 1;
    pub const HAS_RESIDUAL: u32 = 2;
    pub const RELU: u32 = 4;
    pub const WRITE_MAIN: u32 = 8;
    const SPLIT: u32 = 16;

    fn k(&self) -> u32 {
        self.in_c * self.k_h * self.k_w
    }
    fn pointwise(&self) -> bool {
        self.k_h == 1 && self.k_w == 1 && self.stride == 1 && self.pad_y == 0 && self.pad_x == 0
    }
}

/// Output tiles of the implicit-GEMM conv (64 channels × 64 pixels each).
pub fn gemm_tiles(out_c: usize, pixels: usize) -> usize {
    out_c.div_ceil(64) * pixels.div_ceil(64)
}

/// How many slices of K a GEMM conv is split into: enough that the layer has
/// about `target` workgroups, but no slice shorter than `min_slice` (128 = 8
/// steps of 16 by default), where the extra pass over the partial sums would
/// cost more than it frees. 1 means no split. At batch 1, ResNet's 14×14 and
/// 7×7 stages have only 4–32 output tiles, a fraction of a large GPU's cores.
pub fn gemm_splits(out_c: usize, pixels: usize, k: usize, target: usize, min_slice: usize) -> u32 {
    let tiles = gemm_tiles(out_c, pixels);
    if tiles >= target {
        return 1;
    }
    let by_k = k / min_slice.max(16);
    target.div_ceil(tiles).min(by_k).clamp(1, 64) as u32
}

/// K slice length for `splits` slices: a multiple of the 16-deep K step.
fn k_slice(k: u32, splits: u32) -> u32 {
    k.div_ceil(splits).div_ceil(16) * 16
}

/// The buffers of one convolution. `main_out`, when given, receives F(x):
/// the conv + bias before the residual add and ReLU.
pub struct ConvBuffers<'a> {
    pub input: &'a wgpu::Buffer,
    pub weight: &'a wgpu::Buffer,
    pub bias: Option<&'a wgpu::Buffer>,
    pub residual: Option<&'a wgpu::Buffer>,
    pub output: &'a wgpu::Buffer,
    pub main_out: Option<&'a wgpu::Buffer>,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct BnParams {
    channels: u32,
    plane: u32,
    eps: f32,
    _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct LenParams {
    len: u32,
    _pad: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct PoolParams {
    pub channels: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub kernel: u32,
    pub stride: u32,
    pub pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct GapParams {
    channels: u32,
    plane: u32,
    _pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct DenseParams {
    in_features: u32,
    out_features: u32,
    _pad: [u32; 2],
}

/// Layout of `preprocess.wgsl`'s uniform block (80 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct PreprocessParams {
    pub src_w: u32,
    pub src_h: u32,
    pub out_w: u32,
    pub out_h: u32,
    pub crop_x: u32,
    pub crop_y: u32,
    pub _pad0: [u32; 2],
    pub scale: [f32; 2],
    pub _pad1: [f32; 2],
    pub mean: [f32; 4],
    pub inv_std: [f32; 4],
}

/// OIHW conv kernel → the K×M matrix both conv kernels read: `[ci][ky][kx][co]`,
/// output channels contiguous (`o` output channels, `k = I·kh·kw`).
pub fn conv_weights_km(oihw: &[f32], o: usize) -> Vec<f32> {
    let k = oihw.len() / o;
    let mut out = vec![0.0; oihw.len()];
    for co in 0..o {
        for i in 0..k {
            out[i * o + co] = oihw[co * k + i];
        }
    }
    out
}

/// Batchnorm parameters → one (gamma, beta, mean, var) vec4 per channel.
pub fn pack_batchnorm(gamma: &[f32], beta: &[f32], mean: &[f32], var: &[f32]) -> Vec<f32> {
    (0..gamma.len()).flat_map(|c| [gamma[c], beta[c], mean[c], var[c]]).collect()
}

/// `data` as a storage buffer of `precision` values (f16: rounded to nearest).
pub fn storage_buffer_as(device: &wgpu::Device, label: &str, data: &[f32], precision: Precision) -> wgpu::Buffer {
    match precision {
        Precision::F32 => storage_buffer(device, label, data),
        Precision::F16 => {
            let mut bytes: Vec<u8> = data.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect();
            // Bindings are sized in 4-byte words.
            bytes.resize(bytes.len().div_ceil(4).max(1) * 4, 0);
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: &bytes,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
            })
        }
    }
}

pub fn storage_buffer(device: &wgpu::Device, label: &str, data: &[f32]) -> wgpu::Buffer {
    // Zero-length bindings are invalid: pad empty data to one element.
    let one = [0.0f32];
    let data = if data.is_empty() { &one[..] } else { data };
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: bytemuck::cast_slice(data),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
    })
}

impl Kernels {
    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub fn new(device: &wgpu::Device) -> Kernels {
        Self::with_precision(device, Precision::F32)
    }

    /// The kernels for `precision` (f16 needs the device's SHADER_F16).
    pub fn with_precision(device: &wgpu::Device, precision: Precision) -> Kernels {
        let make_full = |name: &str, constants: &[(&str, f64)], partials: bool| {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(specialise(source(name), precision, partials)),
            });
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(name),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                // Every shader writes its workgroup tiles before reading them.
                compilation_options: wgpu::PipelineCompilationOptions { constants, zero_initialize_workgroup_memory: false },
                cache: None,
            })
        };
        let make_with = |name: &str, constants: &[(&str, f64)]| make_full(name, constants, false);
        let make = |name: &str| make_with(name, &[]);
        let conv2d_gemm = make("conv2d_gemm.wgsl");
        let conv2d_gemm_pw = make_with("conv2d_gemm.wgsl", &[("POINTWISE", 1.0)]);
        // In f32 the partial sums have the activations' type: no extra pipelines.
        let (conv2d_gemm_split, conv2d_gemm_split_pw) = match precision {
            Precision::F32 => (conv2d_gemm.clone(), conv2d_gemm_pw.clone()),
            Precision::F16 => (make_full("conv2d_gemm.wgsl", &[], true), make_full("conv2d_gemm.wgsl", &[("POINTWISE", 1.0)], true)),
        };
        Kernels {
            precision,
            conv2d: make("conv2d.wgsl"),
            conv2d_gemm,
            conv2d_gemm_pw,
            conv2d_gemm_split,
            conv2d_gemm_split_pw,
            conv_splitk: make("conv_splitk.wgsl"),
            batchnorm: make("batchnorm.wgsl"),
            add_relu: make("add_relu.wgsl"),
            relu: make("relu.wgsl"),
            maxpool: make("maxpool.wgsl"),
            global_avg_pool: make("global_avg_pool.wgsl"),
            dense: make("dense.wgsl"),
            softmax: make("softmax.wgsl"),
            preprocess: make("preprocess.wgsl"),
            sum_squares: make("sum_squares.wgsl"),
            dummy: storage_buffer(device, "dummy", &[0.0; 4]),
            dummy_out: storage_buffer(device, "dummy out", &[0.0; 4]),
        }
    }

    fn bind(
        &self,
        device: &wgpu::Device,
        label: &str,
        pipeline: &wgpu::ComputePipeline,
        buffers: &[&wgpu::Buffer],
        params: &[u8],
        workgroups: [u32; 3],
    ) -> Dispatch {
        let uniform = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: params,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        });
        let mut entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() })
            .collect();
        entries.push(wgpu::BindGroupEntry { binding: buffers.len() as u32, resource: uniform.as_entire_binding() });
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        Dispatch { label: label.to_string(), pipeline: pipeline.clone(), bind_group, params: uniform, workgroups, then: None }
    }

    /// The direct convolution, `output = epilogue(conv(input, weight))`; `weight` by [`conv_weights_km`].
    pub fn conv2d(&self, device: &wgpu::Device, label: &str, mut p: ConvParams, b: &ConvBuffers) -> Dispatch {
        p.co_groups = p.out_c.div_ceil(4);
        p.flags = Self::epilogue_flags(p.flags, b);
        let n = (p.out_h * p.out_w * p.co_groups) as usize;
        self.bind(device, label, &self.conv2d, &self.conv_bindings(b), bytemuck::bytes_of(&p), grid_for(n))
    }

    /// The tiled implicit-GEMM convolution (64×64 output tiles); `weight` by [`conv_weights_km`].
    pub fn conv2d_gemm(&self, device: &wgpu::Device, label: &str, p: ConvParams, b: &ConvBuffers) -> Dispatch {
        self.conv2d_gemm_split(device, label, p, b, 1, None)
    }

    /// The implicit-GEMM convolution with K cut into `splits` slices (see
    /// [`gemm_splits`]): partial sums go to `scratch` (at least
    /// `splits·out_c·out_h·out_w` floats), then a second kernel adds them up
    /// and applies the epilogue. `splits == 1` is the plain GEMM.
    pub fn conv2d_gemm_split(&self, device: &wgpu::Device, label: &str, mut p: ConvParams, b: &ConvBuffers, splits: u32, scratch: Option<&wgpu::Buffer>) -> Dispatch {
        p.flags = Self::epilogue_flags(p.flags, b);
        let n = p.out_h * p.out_w;
        let tiles = [n.div_ceil(64), p.out_c.div_ceil(64)];
        p.k_split = k_slice(p.k(), splits.max(1));
        // Rounding the slice up to 16 can leave fewer non-empty slices.
        let splits = p.k().div_ceil(p.k_split).max(1);
        let Some(scratch) = scratch.filter(|_| splits > 1) else {
            p.k_split = p.k().max(1);
            let pipeline = if p.pointwise() { &self.conv2d_gemm_pw } else { &self.conv2d_gemm };
            return self.bind(device, label, pipeline, &self.conv_bindings(b), bytemuck::bytes_of(&p), [tiles[0], tiles[1], 1]);
        };
        let len = p.out_c * n;
        assert!(scratch.size() >= (splits * len) as u64 * 4, "split-K scratch buffer too small for {label}");
        // First the raw partial sums of each K slice, then their sum with the epilogue.
        let epilogue = p.flags;
        p.flags = ConvParams::SPLIT;
        let partial = ConvBuffers { input: b.input, weight: b.weight, bias: None, residual: None, output: scratch, main_out: None };
        let pipeline = if p.pointwise() { &self.conv2d_gemm_split_pw } else { &self.conv2d_gemm_split };
        let mut first = self.bind(device, label, pipeline, &self.conv_bindings(&partial), bytemuck::bytes_of(&p), [tiles[0], tiles[1], splits]);
        let reduce = self.bind(
            device,
            &format!("{label} (sum of {splits} K slices)"),
            &self.conv_splitk,
            &[scratch, b.bias.unwrap_or(&self.dummy), b.residual.unwrap_or(&self.dummy), b.output, b.main_out.unwrap_or(&self.dummy_out)],
            bytemuck::cast_slice(&[len, n, splits, epilogue]),
            grid_for(len as usize),
        );
        first.then = Some(Box::new(reduce));
        first
    }

    fn conv_bindings<'a>(&'a self, b: &ConvBuffers<'a>) -> [&'a wgpu::Buffer; 6] {
        [
            b.input,
            b.weight,
            b.bias.unwrap_or(&self.dummy),
            b.residual.unwrap_or(&self.dummy),
            b.output,
            b.main_out.unwrap_or(&self.dummy_out),
        ]
    }

    /// Keeps the caller's RELU and sets the flags the bound buffers imply.
    fn epilogue_flags(flags: u32, b: &ConvBuffers) -> u32 {
        let mut f = flags & ConvParams::RELU;
        for (on, bit) in [(b.bias.is_some(), ConvParams::HAS_BIAS), (b.residual.is_some(), ConvParams::HAS_RESIDUAL), (b.main_out.is_some(), ConvParams::WRITE_MAIN)] {
            if on {
                f |= bit;
            }
        }
        f
    }

    /// `bn` packed by [`pack_batchnorm`].
    #[allow(clippy::too_many_arguments)]
    pub fn batchnorm(
        &self,
        device: &wgpu::Device,
        label: &str,
        channels: usize,
        plane: usize,
        eps: f32,
        input: &wgpu::Buffer,
        bn: &wgpu::Buffer,
        output: &wgpu::Buffer,
    ) -> Dispatch {
        let p = BnParams { channels: channels as u32, plane: plane as u32, eps, _pad: 0 };
        self.bind(device, label, &self.batchnorm, &[input, bn, output], bytemuck::bytes_of(&p), grid_for(channels * plane))
    }

    pub fn add_relu(&self, device: &wgpu::Device, label: &str, len: usize, a: &wgpu::Buffer, b: &wgpu::Buffer, output: &wgpu::Buffer) -> Dispatch {
        let p = LenParams { len: len as u32, _pad: [0; 3] };
        self.bind(device, label, &self.add_relu, &[a, b, output], bytemuck::bytes_of(&p), grid_for(len))
    }

    pub fn relu(&self, device: &wgpu::Device, label: &str, len: usize, input: &wgpu::Buffer, output: &wgpu::Buffer) -> Dispatch {
        let p = LenParams { len: len as u32, _pad: [0; 3] };
        self.bind(device, label, &self.relu, &[input, output], bytemuck::bytes_of(&p), grid_for(len))
    }

    pub fn maxpool(&self, device: &wgpu::Device, label: &str, p: PoolParams, input: &wgpu::Buffer, output: &wgpu::Buffer) -> Dispatch {
        let n = (p.channels * p.out_h * p.out_w) as usize;
        self.bind(device, label, &self.maxpool, &[input, output], bytemuck::bytes_of(&p), grid_for(n))
    }

    pub fn global_avg_pool(&self, device: &wgpu::Device, label: &str, channels: usize, plane: usize, input: &wgpu::Buffer, output: &wgpu::Buffer) -> Dispatch {
        let p = GapParams { channels: channels as u32, plane: plane as u32, _pad: [0; 2] };
        self.bind(device, label, &self.global_avg_pool, &[input, output], bytemuck::bytes_of(&p), grid(channels as u32))
    }

    /// `weight` row-major `(out_features, in_features)`.
    #[allow(clippy::too_many_arguments)]
    pub fn dense(
        &self,
        device: &wgpu::Device,
        label: &str,
        in_features: usize,
        out_features: usize,
        input: &wgpu::Buffer,
        weight: &wgpu::Buffer,
        bias: &wgpu::Buffer,
        output: &wgpu::Buffer,
    ) -> Dispatch {
        let p = DenseParams { in_features: in_features as u32, out_features: out_features as u32, _pad: [0; 2] };
        self.bind(device, label, &self.dense, &[input, weight, bias, output], bytemuck::bytes_of(&p), grid(out_features as u32))
    }

    pub fn softmax(&self, device: &wgpu::Device, label: &str, len: usize, input: &wgpu::Buffer, output: &wgpu::Buffer) -> Dispatch {
        let p = LenParams { len: len as u32, _pad: [0; 3] };
        self.bind(device, label, &self.softmax, &[input, output], bytemuck::bytes_of(&p), [1, 1, 1])
    }

    /// `src` holds RGBA8 pixels packed in u32s; `output` a 3×out_h×out_w tensor.
    pub fn preprocess(&self, device: &wgpu::Device, label: &str, p: PreprocessParams, src: &wgpu::Buffer, output: &wgpu::Buffer) -> Dispatch {
        let n = (p.out_w * p.out_h) as usize;
        self.bind(device, label, &self.preprocess, &[src, output], bytemuck::bytes_of(&p), grid_for(n))
    }

    /// `out[out_index] = Σ (a - b)²` (or `Σ a²` without `b`) over `len` values.
    #[allow(clippy::too_many_arguments)]
    pub fn sum_squares(&self, device: &wgpu::Device, label: &str, len: usize, a: &wgpu::Buffer, b: Option<&wgpu::Buffer>, out: &wgpu::Buffer, out_index: usize) -> Dispatch {
        let p = [len as u32, b.is_some() as u32, out_index as u32, 0];
        self.bind(device, label, &self.sum_squares, &[a, b.unwrap_or(&self.dummy), out], bytemuck::cast_slice(&p), [1, 1, 1])
    }
}
