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

fn source(name: &str) -> &'static str {
    SHADERS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s).expect("known shader")
}

/// A kernel with everything bound: ready to be recorded, any number of times.
pub struct Dispatch {
    pub label: String,
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    /// The kernel's uniform block, rewritable per frame (`queue.write_buffer`).
    params: wgpu::Buffer,
    workgroups: [u32; 3],
}

impl Dispatch {
    pub fn params(&self) -> &wgpu::Buffer {
        &self.params
    }

    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.workgroups[0], self.workgroups[1], self.workgroups[2]);
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
    pub _pad: [u32; 3],
}

impl ConvParams {
    pub const HAS_BIAS: u32 = 1;
    pub const HAS_RESIDUAL: u32 = 2;
    pub const RELU: u32 = 4;
    pub const WRITE_MAIN: u32 = 8;
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
    pub fn new(device: &wgpu::Device) -> Kernels {
        let make = |name: &str| {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(source(name).into()),
            });
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(name),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        Kernels {
            conv2d: make("conv2d.wgsl"),
            conv2d_gemm: make("conv2d_gemm.wgsl"),
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
        Dispatch { label: label.to_string(), pipeline: pipeline.clone(), bind_group, params: uniform, workgroups }
    }

    /// The direct convolution, `output = epilogue(conv(input, weight))`; `weight` by [`conv_weights_km`].
    pub fn conv2d(&self, device: &wgpu::Device, label: &str, mut p: ConvParams, b: &ConvBuffers) -> Dispatch {
        p.co_groups = p.out_c.div_ceil(4);
        p.flags = Self::epilogue_flags(p.flags, b);
        let n = (p.out_h * p.out_w * p.co_groups) as usize;
        self.bind(device, label, &self.conv2d, &self.conv_bindings(b), bytemuck::bytes_of(&p), grid_for(n))
    }

    /// The tiled implicit-GEMM convolution (64×64 output tiles); `weight` by [`conv_weights_km`].
    pub fn conv2d_gemm(&self, device: &wgpu::Device, label: &str, mut p: ConvParams, b: &ConvBuffers) -> Dispatch {
        p.flags = Self::epilogue_flags(p.flags, b);
        let n = p.out_h * p.out_w;
        let wg = [n.div_ceil(64), p.out_c.div_ceil(64), 1];
        self.bind(device, label, &self.conv2d_gemm, &self.conv_bindings(b), bytemuck::bytes_of(&p), wg)
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
