//! The GPU kernels: one WGSL file each under `shaders/`, compiled once per
//! device, and the code that binds buffers to them, one file per family:
//!
//! * [`conv`]: direct, implicit-GEMM and split-K convolutions, and which of
//!   them a layer gets;
//! * [`elementwise`]: batchnorm, ReLU, residual add + ReLU;
//! * [`pool`]: max pool and global average pool;
//! * [`head`]: dense layer and softmax;
//! * [`preprocess`]: RGBA pixels → the normalised input tensor;
//! * [`stats`]: the page's per-block statistics (channel means, ‖F(x)‖ and ‖x‖)
//!   and a gradient's sum of squares;
//! * [`source`]: the WGSL files, their shared snippets and f16 variants.
//!
//! A [`Dispatch`] is a kernel with its buffers and parameters bound; the
//! engine builds all of a network's dispatches once, and each frame only
//! records them into compute passes.
//!
//! Training adds each op's backward kernel beside its forward one (same
//! file family, `*_backward.wgsl`), all f32, batched: N examples one after
//! another, NCHW each. Each kernel's uniform block is declared
//! once, with [`uniform!`], and a test checks it against the WGSL struct.

use std::collections::HashMap;

use wgpu::util::DeviceExt;

use crate::{Error, Result};

pub mod conv;
pub mod elementwise;
pub mod head;
pub mod pool;
pub mod preprocess;
pub mod source;
pub mod stats;

pub use conv::{conv_weights_km, conv_weights_oihw, gemm_splits, ConvBuffers, ConvKernels, ConvParams, FoldedInput, LayerKernel};
pub use elementwise::pack_batchnorm;
pub use pool::PoolParams;
pub use preprocess::PreprocessParams;
pub use source::Precision;

/// Workgroup width of the elementwise and conv shaders.
const WG: u32 = 64;

/// A uniform block as the host writes it. Implemented by [`uniform!`].
pub trait Uniform: bytemuck::Pod {
    /// The shaders whose `Params` struct this is.
    const SHADERS: &'static [&'static str];
    /// Field names and byte offsets, padding (`_…`) included.
    const FIELDS: &'static [(&'static str, usize)];
}

/// Declares a kernel's uniform block once: a `#[repr(C)]` struct for the
/// host, tied to the WGSL files whose `Params` must match it field for field
/// (`tests/kernels.rs` checks offsets and size through naga's layouter).
#[macro_export]
macro_rules! uniform {
    ($(#[$m:meta])* pub struct $name:ident for [$($file:literal),+] { $($(#[$fm:meta])* pub $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct $name { $($(#[$fm])* pub $field: $ty),* }
        impl $crate::kernels::Uniform for $name {
            const SHADERS: &'static [&'static str] = &[$($file),+];
            const FIELDS: &'static [(&'static str, usize)] = &[$((stringify!($field), std::mem::offset_of!($name, $field))),*];
        }
    };
}

/// What the layout test needs of one uniform block.
pub struct UniformLayout {
    pub rust_name: &'static str,
    pub shaders: &'static [&'static str],
    pub fields: &'static [(&'static str, usize)],
    pub size: usize,
}

fn layout<U: Uniform>() -> UniformLayout {
    let name = std::any::type_name::<U>();
    UniformLayout { rust_name: name.rsplit("::").next().unwrap_or(name), shaders: U::SHADERS, fields: U::FIELDS, size: std::mem::size_of::<U>() }
}

/// Every uniform block, for the layout test.
pub fn uniform_layouts() -> Vec<UniformLayout> {
    vec![
        layout::<ConvParams>(),
        layout::<conv::SplitKParams>(),
        layout::<elementwise::BnParams>(),
        layout::<elementwise::LenParams>(),
        layout::<PoolParams>(),
        layout::<pool::GapParams>(),
        layout::<head::DenseParams>(),
        layout::<head::SoftmaxParams>(),
        layout::<PreprocessParams>(),
        layout::<stats::BlockStatsParams>(),
        layout::<stats::StatsNormsParams>(),
        layout::<conv::ChannelSumsParams>(),
        layout::<elementwise::BnStatsParams>(),
        layout::<elementwise::ScaleShiftParams>(),
        layout::<elementwise::BnBackwardParams>(),
        layout::<elementwise::ReluBackwardParams>(),
        layout::<pool::GapBackwardParams>(),
        layout::<head::DenseBackwardParams>(),
        layout::<head::CrossEntropyParams>(),
        layout::<stats::SumSquaresParams>(),
    ]
}

/// A kernel with everything bound: ready to be recorded, any number of times.
pub struct Dispatch {
    pub label: String,
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    /// Where the kernel's uniform block lives (a shared buffer, at this
    /// offset), rewritable per frame with [`Dispatch::write_params`].
    params: (wgpu::Buffer, u64),
    workgroups: [u32; 3],
    /// A second kernel recorded right after this one (split-K's reduction).
    then: Option<Box<Dispatch>>,
}

impl Dispatch {
    /// Replaces the kernel's uniform block (from the next submission on).
    pub fn write_params<U: Uniform>(&self, queue: &wgpu::Queue, params: &U) {
        queue.write_buffer(&self.params.0, self.params.1, bytemuck::bytes_of(params));
    }

    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.workgroups[0], self.workgroups[1], self.workgroups[2]);
        if let Some(next) = &self.then {
            next.record(pass);
        }
    }

    /// How many compute dispatches [`Dispatch::record`] issues.
    pub fn count(&self) -> usize {
        1 + self.then.as_ref().map_or(0, |d| d.count())
    }
}

/// Spreads `n` workgroups over x and y so no axis exceeds 65535; the shaders
/// rebuild the flat index (`shaders/lib/flat_index.wgsl`).
fn grid(n: usize) -> Result<[u32; 3]> {
    let n = n.max(1);
    let x = n.min(65535);
    let y = n.div_ceil(x);
    if y > 65535 {
        return Err(Error::of(crate::error::ErrorKind::InputTooLarge, format!("{n} workgroups are more than one dispatch can hold (65535²)")));
    }
    Ok([x as u32, y as u32, 1])
}

/// The grid for one invocation per element, `WG` per workgroup.
fn grid_for(invocations: usize) -> Result<[u32; 3]> {
    grid(invocations.div_ceil(WG as usize))
}

/// `data` as a storage buffer of `precision` values (f16: rounded to nearest).
pub fn storage_buffer_as(device: &wgpu::Device, label: &str, data: &[f32], precision: Precision) -> wgpu::Buffer {
    match precision {
        Precision::F32 => storage_buffer(device, label, data),
        Precision::F16 => {
            let mut bytes: Vec<u8> = data.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect();
            // Bindings are sized in 4-byte words.
            bytes.resize(bytes.len().div_ceil(4).max(1) * 4, 0);
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: Some(label), contents: &bytes, usage: STORAGE })
        }
    }
}

pub fn storage_buffer(device: &wgpu::Device, label: &str, data: &[f32]) -> wgpu::Buffer {
    // Zero-length bindings are invalid: pad empty data to one element.
    let one = [0.0f32];
    let data = if data.is_empty() { &one[..] } else { data };
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: Some(label), contents: bytemuck::cast_slice(data), usage: STORAGE })
}

/// Usages of every storage buffer: bound to kernels, written by the queue, copied for readback.
pub(crate) const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_DST).union(wgpu::BufferUsages::COPY_SRC);

/// The compiled kernels of one device, at one storage precision.
pub struct Kernels {
    device: wgpu::Device,
    /// Writes the dispatches' uniform blocks.
    queue: wgpu::Queue,
    /// The uniform blocks of all dispatches, packed into shared buffers.
    uniforms: std::sync::Mutex<UniformArena>,
    precision: Precision,
    /// Cooperative matrices in hardware (else conv2d_coop.wgsl runs its portable twin).
    native_coop: bool,
    /// Pipelines by (file, specialisation), compiled on first use.
    pipelines: std::sync::Mutex<HashMap<(&'static str, Variant), wgpu::ComputePipeline>>,
    /// Bound where a kernel's optional input (bias, residual) is absent.
    dummy: wgpu::Buffer,
    /// The same for an optional output (a buffer cannot be bound both ways).
    dummy_out: wgpu::Buffer,
}

/// Uniform blocks packed into shared buffers, at the device's uniform offset
/// alignment: one buffer for a network's ~60–120 dispatches instead of one
/// each, so wgpu tracks (and a frame's command buffer references) one
/// resource where it tracked each. A full buffer is left to the dispatches
/// that use it (freed with them) and a new one started.
#[derive(Default)]
struct UniformArena {
    current: Option<wgpu::Buffer>,
    used: u64,
}

impl UniformArena {
    /// Bytes per shared buffer: 256 uniform blocks at the usual alignment.
    const CHUNK: u64 = 64 << 10;

    /// A `size`-byte slot: its buffer and offset.
    fn slot(&mut self, device: &wgpu::Device, size: u64) -> (wgpu::Buffer, u64) {
        let align = device.limits().min_uniform_buffer_offset_alignment.max(4) as u64;
        let offset = self.used.div_ceil(align) * align;
        match &self.current {
            Some(b) if offset + size <= b.size() => {
                self.used = offset + size;
                (b.clone(), offset)
            }
            _ => {
                let b = device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("uniform blocks"),
                    size: Self::CHUNK.max(size),
                    usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                self.current = Some(b.clone());
                self.used = size;
                (b, 0)
            }
        }
    }
}

/// A pipeline's specialisation beyond the precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
struct Variant {
    /// `POINTWISE = true`: the GEMMs for 1×1 stride-1 unpadded convs.
    pointwise: bool,
    /// The GEMM writing f32 split-K partial sums (the f16 path; in f32 the
    /// partial sums already have the activations' type).
    partials: bool,
    /// `FOLDED = true`: the GEMMs reading the previous conv's split-K partial
    /// sums as their input (see `FoldedInput`).
    folded: bool,
    /// The conv's input is an f32 tensor on the f16 path (the network's
    /// input, which stays f32 so it is uploaded without a conversion).
    f32_input: bool,
    /// The tiled GEMM on 32×32 tiles (`LayerKernel::SmallGemm`).
    small_tile: bool,
}

impl Variant {
    const PLAIN: Variant = Variant { pointwise: false, partials: false, folded: false, f32_input: false, small_tile: false };
}

impl Kernels {
    /// The kernels for `precision` (f16 needs the device's SHADER_F16).
    /// Each shader is compiled on first use and kept.
    pub fn new(device: &wgpu::Device, queue: &wgpu::Queue, precision: Precision) -> Kernels {
        Kernels {
            device: device.clone(),
            queue: queue.clone(),
            uniforms: Default::default(),
            precision,
            native_coop: device.features().contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX),
            pipelines: Default::default(),
            dummy: storage_buffer(device, "dummy", &[0.0; 4]),
            dummy_out: storage_buffer(device, "dummy out", &[0.0; 4]),
        }
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// Whether conv2d_coop.wgsl runs on tensor cores (else its portable twin).
    pub fn native_coop(&self) -> bool {
        self.native_coop
    }

    fn pipeline(&self, file: &'static str, variant: Variant) -> Result<wgpu::ComputePipeline> {
        if let Some(p) = self.pipelines.lock().expect("pipeline cache").get(&(file, variant)) {
            return Ok(p.clone());
        }
        let constants: Vec<(&str, f64)> = [("POINTWISE", variant.pointwise), ("FOLDED", variant.folded)].into_iter().filter(|c| c.1).map(|(name, _)| (name, 1.0)).collect();
        let spec = source::Spec {
            precision: self.precision,
            partials: variant.partials && self.precision != Precision::F32,
            native_coop: self.native_coop,
            f32_input: (variant.folded || variant.f32_input) && self.precision != Precision::F32,
            small_tile: variant.small_tile,
        };
        let wgsl = source::specialised(source::shader(file), spec)?;
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor { label: Some(file), source: wgpu::ShaderSource::Wgsl(wgsl.into()) });
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(file),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            // Every shader writes its workgroup tiles before reading them.
            compilation_options: wgpu::PipelineCompilationOptions { constants: &constants, zero_initialize_workgroup_memory: false },
            cache: None,
        });
        self.pipelines.lock().expect("pipeline cache").insert((file, variant), pipeline.clone());
        Ok(pipeline)
    }

    /// Binds `buffers` to bindings 0.. and `params` (a slot of the shared
    /// uniform buffers) to the next binding.
    fn bind<U: Uniform>(&self, label: &str, file: &'static str, variant: Variant, buffers: &[&wgpu::Buffer], params: &U, workgroups: [u32; 3]) -> Result<Dispatch> {
        debug_assert!(U::SHADERS.contains(&file), "{file} does not declare this uniform block");
        let pipeline = self.pipeline(file, variant)?;
        let bytes = bytemuck::bytes_of(params);
        let (uniform, offset) = self.uniforms.lock().expect("uniform arena").slot(&self.device, bytes.len() as u64);
        self.queue.write_buffer(&uniform, offset, bytes);
        let mut entries: Vec<wgpu::BindGroupEntry> =
            buffers.iter().enumerate().map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() }).collect();
        let size = std::num::NonZeroU64::new(bytes.len() as u64);
        entries.push(wgpu::BindGroupEntry { binding: buffers.len() as u32, resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding { buffer: &uniform, offset, size }) });
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor { label: Some(label), layout: &pipeline.get_bind_group_layout(0), entries: &entries });
        Ok(Dispatch { label: label.to_string(), pipeline, bind_group, params: (uniform, offset), workgroups, then: None })
    }
}
