//! Convolutions: the direct kernel (`conv2d.wgsl`), the tiled implicit GEMM
//! (`conv2d_gemm.wgsl`), the implicit GEMM on 16×16×16 f16 matrix fragments
//! (`conv2d_coop.wgsl`: tensor cores through cooperative matrices, or its
//! portable twin), the GEMMs' split-K form (partial sums, then
//! `conv_splitk.wgsl`), all with the fused epilogue; and, in one place,
//! which of them each layer of a network gets. For training: the direct
//! kernel over a batch, and the backward kernels (`conv2d_backward_input.wgsl`,
//! `conv2d_backward_weight.wgsl`, `channel_sums.wgsl` for a bias).

use super::{grid_for, Dispatch, Kernels, Precision, Variant};
use crate::model::{ConvSpec, Shape};
use crate::{bail, Error, Result};

crate::uniform! {
    /// The uniform block of the three conv shaders.
    pub struct ConvParams for ["conv2d.wgsl", "conv2d_gemm.wgsl", "conv2d_coop.wgsl", "conv2d_backward_input.wgsl", "conv2d_backward_weight.wgsl"] {
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
        /// Direct kernel: groups of 4 output channels (set by the kernel functions).
        pub co_groups: u32,
        /// Split-K slice length (set by the kernel functions).
        pub k_split: u32,
        /// A folded input (see [`FoldedInput`]): its slices, and the
        /// producer's HAS_BIAS and RELU flags.
        pub in_splits: u32,
        pub in_flags: u32,
    }
}

crate::uniform! {
    /// Per-channel sums over a batch (a conv bias's gradient).
    pub struct ChannelSumsParams for ["channel_sums.wgsl"] {
        pub channels: u32,
        pub plane: u32,
        pub batch: u32,
        pub _pad: u32,
    }
}

crate::uniform! {
    /// The reduction of split-K partial sums.
    pub struct SplitKParams for ["conv_splitk.wgsl"] {
        /// M·N outputs.
        pub len: u32,
        /// N = out_h·out_w.
        pub plane: u32,
        pub splits: u32,
        pub flags: u32,
    }
}

impl ConvParams {
    pub const HAS_BIAS: u32 = 1;
    pub const HAS_RESIDUAL: u32 = 2;
    pub const RELU: u32 = 4;
    pub const WRITE_MAIN: u32 = 8;
    const SPLIT: u32 = 16;

    /// The parameters of layer `c` from `input` to `output`.
    pub fn of(c: &ConvSpec, input: Shape, output: Shape, relu: bool) -> ConvParams {
        ConvParams {
            in_c: input.c as u32,
            in_h: input.h as u32,
            in_w: input.w as u32,
            out_c: output.c as u32,
            out_h: output.h as u32,
            out_w: output.w as u32,
            k_h: c.kernel.0 as u32,
            k_w: c.kernel.1 as u32,
            stride: c.stride as u32,
            pad_y: c.padding.0 as u32,
            pad_x: c.padding.1 as u32,
            flags: if relu { ConvParams::RELU } else { 0 },
            ..Default::default()
        }
    }

    fn k(&self) -> u32 {
        self.in_c * self.k_h * self.k_w
    }
    fn pointwise(&self) -> bool {
        self.k_h == 1 && self.k_w == 1 && self.stride == 1 && self.pad_y == 0 && self.pad_x == 0
    }
}

/// Which conv kernels fast mode runs (inspect mode always uses the direct one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvKernels {
    /// The direct kernel everywhere (the reference point for benchmarks).
    Direct,
    /// The tiled implicit GEMM where its tiles fill, K never split.
    Gemm,
    /// The GEMM with K split so a layer has about `target` workgroups, in
    /// slices of at least `min_slice` (see [`gemm_splits`]). With a
    /// nonzero `fold`, a conv split into at most `fold` slices whose only reader is the
    /// next conv leaves its partial sums for that conv to finish while
    /// loading (no reduction dispatch; each of the reader's loads then reads
    /// every slice, so deep splits are better reduced: [`NO_FOLD`], [`FOLD_ANY`]).
    /// With `small`, a layer that would split K runs unsplit on 32×32 tiles
    /// instead where those alone give at least half of `target`
    /// ([`small_tiles_suffice`]): no partial sums, no reduction dispatch.
    SplitK { target: usize, min_slice: usize, fold: u32, small: bool },
    /// The f16 matrix-fragment GEMM (the f16 path), K split the same way
    /// (`target` 0: never): tensor cores where the adapter has cooperative
    /// matrices, else its portable twin.
    Coop { target: usize, min_slice: usize, fold: u32 },
}

impl ConvKernels {
    /// The default for an adapter: split-K only pays on a GPU with many cores;
    /// a CPU adapter (lavapipe, SwiftShader) runs the plain GEMM. On the f16
    /// path, a device with cooperative matrices gets the tensor-core kernel.
    pub fn for_adapter(info: &wgpu::AdapterInfo, features: wgpu::Features, precision: Precision) -> ConvKernels {
        match info.device_type {
            _ if precision == Precision::F16 && features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) => ConvKernels::Coop { target: 256, min_slice: 128, fold: NO_FOLD },
            wgpu::DeviceType::Cpu => ConvKernels::Gemm,
            _ => ConvKernels::SplitK { target: 256, min_slice: 128, fold: NO_FOLD, small: false },
        }
    }

    /// The kernel a fast-mode layer gets: the tiled implicit GEMM for 64+
    /// output channels and 16+ output pixels (on lavapipe it halves
    /// ResNet-18's 7×7 stage 4 against the direct kernel); narrower layers
    /// waste most of a 64×64 tile and stay on the direct kernel.
    pub fn for_layer(self, c: &ConvSpec, output: Shape) -> LayerKernel {
        let pixels = output.h * output.w;
        let k = c.in_channels * c.kernel.0 * c.kernel.1;
        let tiled = c.out_channels >= 64 && pixels >= 16 && k >= 16;
        // The GEMMs put pixel tiles on the grid's x axis, at most 65535 of
        // them: a larger map (the stem's 2048×2048 output at a 4096² input)
        // goes to the direct kernel, whose grid spreads over x and y.
        let fits = |tile: usize| pixels.div_ceil(tile) <= 65535;
        match self {
            _ if !tiled || !fits(64) => LayerKernel::Direct,
            ConvKernels::Direct => LayerKernel::Direct,
            ConvKernels::Gemm => LayerKernel::Gemm,
            ConvKernels::SplitK { target, min_slice, small, .. } => match gemm_splits(c.out_channels, pixels, k, target, min_slice) {
                1 => LayerKernel::Gemm,
                _ if small && small_tiles_suffice(c.out_channels, pixels, target) && fits(32) => LayerKernel::SmallGemm,
                n => LayerKernel::SplitK(n),
            },
            ConvKernels::Coop { target: 0, .. } => LayerKernel::Coop(1),
            ConvKernels::Coop { target, min_slice, .. } => LayerKernel::Coop(gemm_splits(c.out_channels, pixels, k, target, min_slice)),
        }
    }

    /// Whether a conv split into `splits` slices may hand its partial sums
    /// to the next conv.
    pub fn folds(self, splits: u32) -> bool {
        match self {
            ConvKernels::SplitK { fold, .. } | ConvKernels::Coop { fold, .. } => splits >= 2 && splits <= fold,
            _ => false,
        }
    }
}

impl std::str::FromStr for ConvKernels {
    type Err = Error;
    /// `direct`, `gemm` (no split), `splitk[:N[:S]]` (about N workgroups per
    /// layer, 256 by default; K slices of at least S, 128 by default) or
    /// `coop[:N[:S]]`; `splitk+fold` and `coop+fold` fold reductions into
    /// the next conv where they can, `+foldF` only those of F slices or
    /// fewer; `splitk+small` (also `+fold+small`)
    /// runs 32×32 tiles instead of splitting where they give enough workgroups.
    fn from_str(s: &str) -> Result<ConvKernels> {
        let mut parts = s.split(':');
        let mut flags = parts.next().unwrap_or_default().split('+');
        let kind = flags.next().unwrap_or_default();
        let (mut fold, mut small) = (NO_FOLD, false);
        for flag in flags {
            match flag {
                "small" if !small && kind == "splitk" => small = true,
                _ if fold == NO_FOLD && flag.starts_with("fold") => {
                    fold = match &flag[4..] {
                        "" => FOLD_ANY,
                        n => n.parse().ok().filter(|&n| n >= 2).ok_or_else(|| Error::of(crate::error::ErrorKind::BadInput, format!("bad `+{flag}` in conv kernels `{s}`: +fold, or +foldF with F ≥ 2 the most slices folded")))?,
                    }
                }
                _ => bail!(BadInput, "unknown option `+{flag}` in conv kernels `{s}`: splitk takes +fold[F] and +small, coop +fold[F]"),
            }
        }
        let mut num = |default: usize| -> Result<usize> {
            match parts.next() {
                None => Ok(default),
                Some(n) => n.parse().map_err(|_| Error::new(format!("bad number `{n}` in conv kernels `{s}`"))),
            }
        };
        let k = match kind {
            "direct" if fold == NO_FOLD => ConvKernels::Direct,
            "gemm" if fold == NO_FOLD => ConvKernels::Gemm,
            "splitk" => ConvKernels::SplitK { target: num(256)?, min_slice: num(128)?, fold, small },
            "coop" => ConvKernels::Coop { target: num(256)?, min_slice: num(128)?, fold },
            _ => bail!(BadInput, "unknown conv kernels `{s}`: use direct, gemm, splitk[+fold[F]][+small][:N[:S]] or coop[+fold[F]][:N[:S]]"),
        };
        if parts.next().is_some() {
            bail!(BadInput, "too many parts in conv kernels `{s}`");
        }
        Ok(k)
    }
}

/// `fold` of [`ConvKernels`]: never fold, or fold at any depth of split.
pub const NO_FOLD: u32 = 0;
pub const FOLD_ANY: u32 = u32::MAX;

fn fold_flag(fold: u32) -> String {
    match fold {
        NO_FOLD => String::new(),
        FOLD_ANY => "+fold".into(),
        n => format!("+fold{n}"),
    }
}

impl std::fmt::Display for ConvKernels {
    /// The form `from_str` reads.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            ConvKernels::Direct => f.write_str("direct"),
            ConvKernels::Gemm => f.write_str("gemm"),
            ConvKernels::SplitK { target, min_slice, fold, small } => write!(f, "splitk{}{}:{target}:{min_slice}", fold_flag(fold), if small { "+small" } else { "" }),
            ConvKernels::Coop { target, min_slice, fold } => write!(f, "coop{}:{target}:{min_slice}", fold_flag(fold)),
        }
    }
}

/// The kernel one layer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKernel {
    Direct,
    Gemm,
    /// The GEMM on 32×32 tiles, K not split.
    SmallGemm,
    /// The GEMM with K cut into this many slices (2 or more).
    SplitK(u32),
    /// The f16 matrix-fragment GEMM, K in this many slices (1: no split).
    Coop(u32),
}

impl LayerKernel {
    /// The K slices the layer really runs in (`k` = in_channels·kh·kw):
    /// rounding slices up to the 16-deep K step can leave fewer than asked.
    pub fn splits(self, k: usize) -> u32 {
        match self {
            LayerKernel::SplitK(n) | LayerKernel::Coop(n) => effective_splits(k as u32, n),
            LayerKernel::Direct | LayerKernel::Gemm | LayerKernel::SmallGemm => 1,
        }
    }

    /// One of the implicit GEMMs (the kernels that can load a folded input).
    pub fn is_gemm(self) -> bool {
        !matches!(self, LayerKernel::Direct)
    }
}

/// Output tiles of the implicit-GEMM conv (64 channels × 64 pixels each).
pub fn gemm_tiles(out_c: usize, pixels: usize) -> usize {
    out_c.div_ceil(64) * pixels.div_ceil(64)
}

/// Whether 32×32 tiles alone give a layer at least half of `target`
/// workgroups: then `splitk+small` runs them instead of splitting K (a
/// ResNet-50's block-ending 1×1 convs and shortcuts at 14×14 and 7×7: 128
/// to 400 workgroups, where 64×64 tiles give 32 to 104).
pub fn small_tiles_suffice(out_c: usize, pixels: usize, target: usize) -> bool {
    out_c.div_ceil(32) * pixels.div_ceil(32) >= target.div_ceil(2)
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
    k.div_ceil(splits.max(1)).div_ceil(16).max(1) * 16
}

fn effective_splits(k: u32, splits: u32) -> u32 {
    k.div_ceil(k_slice(k, splits)).max(1)
}

/// OIHW conv kernel → the K×M matrix both conv kernels read: `[ci][ky][kx][co]`,
/// output channels contiguous (`o` output channels, `k = I·kh·kw`): the
/// `o×k` matrix transposed.
pub fn conv_weights_km(oihw: &[f32], o: usize) -> Vec<f32> {
    crate::weights::naming::transpose(oihw, o, oihw.len() / o)
}

/// The K×M matrix of [`conv_weights_km`] (a weight gradient as the kernels
/// write it) back to OIHW.
pub fn conv_weights_oihw(km: &[f32], o: usize) -> Vec<f32> {
    crate::weights::naming::transpose(km, km.len() / o, o)
}

/// The buffers of one convolution. `main_out`, when given, receives F(x):
/// the conv + bias before the residual add and ReLU.
pub struct ConvBuffers<'a> {
    /// The input; with `fold`, the previous conv's partial sums.
    pub input: &'a wgpu::Buffer,
    pub weight: &'a wgpu::Buffer,
    pub bias: Option<&'a wgpu::Buffer>,
    pub residual: Option<&'a wgpu::Buffer>,
    pub output: &'a wgpu::Buffer,
    pub main_out: Option<&'a wgpu::Buffer>,
    pub fold: Option<FoldedInput<'a>>,
    /// The input holds f32 whatever the precision (the network's input
    /// tensor; a folded input is f32 anyway).
    pub f32_input: bool,
}

/// An input left as the previous conv's split-K partial sums (`splits`
/// input-sized f32 slices), finished by the GEMM's loads with that conv's
/// `bias` and `relu`: what its reduction would have done, one dispatch fewer.
#[derive(Clone, Copy)]
pub struct FoldedInput<'a> {
    pub splits: u32,
    pub bias: Option<&'a wgpu::Buffer>,
    pub relu: bool,
}

impl Kernels {
    /// One conv layer on the kernel `kernel` chose; split-K needs `scratch`
    /// (at least `splits·out_c·out_h·out_w` floats).
    pub fn conv(&self, label: &str, p: ConvParams, b: &ConvBuffers, kernel: LayerKernel, scratch: Option<&wgpu::Buffer>) -> Result<Dispatch> {
        if b.fold.is_some() && !kernel.is_gemm() {
            bail!("{label}: only the GEMM kernels read a folded input");
        }
        match kernel {
            LayerKernel::Direct => self.conv2d(label, p, b),
            LayerKernel::Gemm => self.conv2d_gemm(label, p, b),
            LayerKernel::SmallGemm => self.conv2d_gemm_small(label, p, b),
            LayerKernel::SplitK(splits) => match scratch {
                Some(scratch) => self.gemm_split("conv2d_gemm.wgsl", label, p, b, splits, scratch),
                None => bail!("{label}: split-K without a scratch buffer"),
            },
            LayerKernel::Coop(1) => self.gemm("conv2d_coop.wgsl", label, p, b),
            LayerKernel::Coop(splits) => match scratch {
                Some(scratch) => self.gemm_split("conv2d_coop.wgsl", label, p, b, splits, scratch),
                None => bail!("{label}: split-K without a scratch buffer"),
            },
        }
    }

    /// A split-K GEMM conv's first half only: its raw partial sums go to
    /// `b.output` (at least `kernel.splits(k)·out_c·out_h·out_w` f32s) for
    /// the next conv to read as a [`FoldedInput`]; `b.bias`, `b.residual`
    /// and `b.main_out` must be left for that conv (they are refused here).
    pub fn conv_partials(&self, label: &str, mut p: ConvParams, b: &ConvBuffers, kernel: LayerKernel) -> Result<Dispatch> {
        let file = match kernel {
            LayerKernel::SplitK(_) => "conv2d_gemm.wgsl",
            LayerKernel::Coop(_) => "conv2d_coop.wgsl",
            _ => bail!("{label}: only a split-K GEMM leaves partial sums"),
        };
        let splits = kernel.splits(p.k() as usize);
        if splits < 2 || b.bias.is_some() || b.residual.is_some() || b.main_out.is_some() {
            bail!("{label}: partial sums need 2+ K slices and no epilogue buffers");
        }
        p.k_split = k_slice(p.k(), splits);
        if b.output.size() < splits as u64 * (p.out_c * p.out_h * p.out_w) as u64 * 4 {
            bail!("{label}: the partial-sums buffer is too small");
        }
        p.flags = ConvParams::SPLIT;
        self.bind_gemm(label, file, p, b, true, splits)
    }

    /// The direct convolution, `output = epilogue(conv(input, weight))`; `weight` by [`conv_weights_km`].
    pub fn conv2d(&self, label: &str, mut p: ConvParams, b: &ConvBuffers) -> Result<Dispatch> {
        p.co_groups = p.out_c.div_ceil(4);
        p.flags = epilogue_flags(p.flags, b);
        let n = (p.out_h * p.out_w) as usize * p.co_groups as usize;
        let buffers = [b.input, b.weight, b.bias.unwrap_or(&self.dummy), b.residual.unwrap_or(&self.dummy), b.output, b.main_out.unwrap_or(&self.dummy_out)];
        let variant = Variant { f32_input: b.f32_input, ..Variant::PLAIN };
        self.bind(label, "conv2d.wgsl", variant, &buffers, &p, grid_for(n)?)
    }

    /// The tiled implicit-GEMM convolution (64×64 output tiles); `weight` by [`conv_weights_km`].
    pub fn conv2d_gemm(&self, label: &str, p: ConvParams, b: &ConvBuffers) -> Result<Dispatch> {
        self.gemm("conv2d_gemm.wgsl", label, p, b)
    }

    /// The tiled implicit-GEMM convolution on 32×32 output tiles (8×8
    /// invocations): four times the workgroups of 64×64 tiles, for layers
    /// with few output tiles.
    pub fn conv2d_gemm_small(&self, label: &str, mut p: ConvParams, b: &ConvBuffers) -> Result<Dispatch> {
        p.flags = epilogue_flags(p.flags, b);
        p.k_split = p.k().max(1);
        self.bind_gemm_tiled(label, "conv2d_gemm.wgsl", p, b, false, 1, true)
    }

    /// The implicit-GEMM convolution with K cut into `splits` slices (see
    /// [`gemm_splits`]): partial sums go to `scratch`, then a second kernel
    /// adds them up and applies the epilogue.
    pub fn conv2d_gemm_split(&self, label: &str, p: ConvParams, b: &ConvBuffers, splits: u32, scratch: &wgpu::Buffer) -> Result<Dispatch> {
        self.gemm_split("conv2d_gemm.wgsl", label, p, b, splits, scratch)
    }

    /// The f16 matrix-fragment convolution (`conv2d_coop.wgsl`), K in `splits`
    /// slices (1: none; then `scratch` may be anything).
    pub fn conv2d_coop(&self, label: &str, p: ConvParams, b: &ConvBuffers, splits: u32, scratch: &wgpu::Buffer) -> Result<Dispatch> {
        self.gemm_split("conv2d_coop.wgsl", label, p, b, splits, scratch)
    }

    /// One of the implicit GEMMs (64×64 output tiles) without split-K.
    fn gemm(&self, file: &'static str, label: &str, mut p: ConvParams, b: &ConvBuffers) -> Result<Dispatch> {
        p.flags = epilogue_flags(p.flags, b);
        p.k_split = p.k().max(1);
        self.bind_gemm(label, file, p, b, false, 1)
    }

    /// Binds one of the GEMM shaders: `b`'s buffers, a folded input's
    /// parameters and bias, `splits` slices of K along z.
    fn bind_gemm(&self, label: &str, file: &'static str, p: ConvParams, b: &ConvBuffers, partials: bool, splits: u32) -> Result<Dispatch> {
        self.bind_gemm_tiled(label, file, p, b, partials, splits, false)
    }

    /// [`Self::bind_gemm`] on 64×64 or (`small_tile`) 32×32 output tiles.
    #[allow(clippy::too_many_arguments)]
    fn bind_gemm_tiled(&self, label: &str, file: &'static str, mut p: ConvParams, b: &ConvBuffers, partials: bool, splits: u32, small_tile: bool) -> Result<Dispatch> {
        let mut in_bias = &self.dummy;
        if let Some(f) = &b.fold {
            p.in_splits = f.splits;
            p.in_flags = if f.relu { ConvParams::RELU } else { 0 };
            if let Some(bias) = f.bias {
                p.in_flags |= ConvParams::HAS_BIAS;
                in_bias = bias;
            }
        }
        let variant = Variant { pointwise: p.pointwise(), partials, folded: b.fold.is_some(), f32_input: b.f32_input, small_tile };
        let buffers = [b.input, b.weight, b.bias.unwrap_or(&self.dummy), b.residual.unwrap_or(&self.dummy), b.output, b.main_out.unwrap_or(&self.dummy_out), in_bias];
        let tile = if small_tile { 32 } else { 64 };
        self.bind(label, file, variant, &buffers, &p, gemm_grid(&p, splits, tile)?)
    }

    /// One of the implicit GEMMs with K cut into `splits` slices: partial sums
    /// to `scratch` (at least `splits·out_c·out_h·out_w` f32s), then their
    /// sum with the epilogue.
    fn gemm_split(&self, file: &'static str, label: &str, mut p: ConvParams, b: &ConvBuffers, splits: u32, scratch: &wgpu::Buffer) -> Result<Dispatch> {
        p.k_split = k_slice(p.k(), splits);
        // Rounding the slice up to 16 can leave fewer non-empty slices.
        let splits = effective_splits(p.k(), splits);
        if splits == 1 {
            return self.gemm(file, label, p, b);
        }
        let n = p.out_h * p.out_w;
        let len = p.out_c * n;
        if scratch.size() < (splits as u64) * (len as u64) * 4 {
            bail!("{label}: the split-K scratch buffer is too small");
        }
        let reduce = SplitKParams { len, plane: n, splits, flags: epilogue_flags(p.flags, b) };
        p.flags = ConvParams::SPLIT;
        let partial = ConvBuffers { bias: None, residual: None, output: scratch, main_out: None, ..*b };
        let mut first = self.bind_gemm(label, file, p, &partial, true, splits)?;
        let buffers = [scratch, b.bias.unwrap_or(&self.dummy), b.residual.unwrap_or(&self.dummy), b.output, b.main_out.unwrap_or(&self.dummy_out)];
        let label = format!("{label} (sum of {splits} K slices)");
        first.then = Some(Box::new(self.bind(&label, "conv_splitk.wgsl", Variant::PLAIN, &buffers, &reduce, grid_for(len as usize)?)?));
        Ok(first)
    }

    /// The direct convolution over a batch of `batch` NCHW examples, one
    /// after another in `b.input` and `b.output` (training's forward pass).
    pub fn conv2d_batch(&self, label: &str, batch: usize, p: ConvParams, b: &ConvBuffers) -> Result<Dispatch> {
        let mut d = self.conv2d(label, p, b)?;
        d.workgroups[2] = batch as u32;
        Ok(d)
    }

    /// Adds the input gradient of conv `p` over a batch to `dx`, from the
    /// output gradient `dy` and the K×M `weight` ([`conv_weights_km`]).
    pub fn conv2d_backward_input(&self, label: &str, batch: usize, mut p: ConvParams, dy: &wgpu::Buffer, weight: &wgpu::Buffer, dx: &wgpu::Buffer) -> Result<Dispatch> {
        p.co_groups = p.in_c.div_ceil(4);
        let mut workgroups = grid_for((p.in_h * p.in_w) as usize * p.co_groups as usize)?;
        workgroups[2] = batch as u32;
        self.bind(label, "conv2d_backward_input.wgsl", Variant::PLAIN, &[dy, weight, dx], &p, workgroups)
    }

    /// Writes the weight gradient of conv `p` over a batch to `dw` (K×M,
    /// as [`conv_weights_km`] lays weights out), from its input `x` and
    /// output gradient `dy`. The batch's pixels are cut into slices where
    /// the 64×64 tiles alone would leave the GPU idle: their partial sums go
    /// to `scratch` (at least [`Kernels::weight_grad_slices`]·K·M floats),
    /// then are added up in order.
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d_backward_weight(&self, label: &str, batch: usize, mut p: ConvParams, x: &wgpu::Buffer, dy: &wgpu::Buffer, dw: &wgpu::Buffer, scratch: Option<&wgpu::Buffer>) -> Result<Dispatch> {
        let (k, m) = (p.k() as usize, p.out_c as usize);
        let q = batch * (p.out_h * p.out_w) as usize;
        let slices = Self::weight_grad_slices(k, m, q);
        let per = q.div_ceil(slices).div_ceil(16) * 16;
        let slices = q.div_ceil(per).max(1);
        p.co_groups = batch as u32;
        p.k_split = per as u32;
        let workgroups = [k.div_ceil(64) as u32, m.div_ceil(64) as u32, slices as u32];
        if slices == 1 {
            return self.bind(label, "conv2d_backward_weight.wgsl", Variant::PLAIN, &[x, dy, dw], &p, workgroups);
        }
        let Some(scratch) = scratch.filter(|s| s.size() >= (slices * k * m * 4) as u64) else {
            bail!("{label}: the weight gradient's scratch buffer is missing or too small");
        };
        let mut first = self.bind(label, "conv2d_backward_weight.wgsl", Variant::PLAIN, &[x, dy, scratch], &p, workgroups)?;
        let len = (k * m) as u32;
        let reduce = SplitKParams { len, plane: len, splits: slices as u32, flags: 0 };
        let buffers = [scratch, &self.dummy, &self.dummy, dw, &self.dummy_out];
        first.then = Some(Box::new(self.bind(&format!("{label} (sum of {slices} slices)"), "conv_splitk.wgsl", Variant::PLAIN, &buffers, &reduce, grid_for(len as usize)?)?));
        Ok(first)
    }

    /// How many slices of the batch's `q` pixels the weight gradient of a
    /// `k`×`m` GEMM is cut into: enough for ~256 workgroups, each slice at
    /// least 256 pixels long.
    pub fn weight_grad_slices(k: usize, m: usize, q: usize) -> usize {
        let tiles = k.div_ceil(64) * m.div_ceil(64);
        256usize.div_ceil(tiles).min(q / 256).clamp(1, 65535)
    }

    /// Writes each channel's sum over a batch of `dy` (a conv bias's gradient) to `out`.
    pub fn channel_sums(&self, label: &str, batch: usize, channels: usize, plane: usize, dy: &wgpu::Buffer, out: &wgpu::Buffer) -> Result<Dispatch> {
        let p = ChannelSumsParams { channels: channels as u32, plane: plane as u32, batch: batch as u32, _pad: 0 };
        self.bind(label, "channel_sums.wgsl", Variant::PLAIN, &[dy, out], &p, [channels as u32, 1, 1])
    }
}

/// Output tiles (`tile`×`tile`) along x (pixels) and y (channels), K slices along z.
fn gemm_grid(p: &ConvParams, splits: u32, tile: u32) -> Result<[u32; 3]> {
    let grid = [(p.out_h * p.out_w).div_ceil(tile), p.out_c.div_ceil(tile), splits];
    if grid.iter().any(|&n| n > 65535) {
        bail!(InputTooLarge, "a {}×{} output map needs more than 65535 GEMM tiles along one axis", p.out_h, p.out_w);
    }
    Ok(grid)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_kernel_names_read_back_as_written() {
        for s in ["direct", "gemm", "splitk:256:128", "splitk+fold:64:16", "splitk+small:256:128", "splitk+fold+small:256:256", "splitk+fold4+small:256:128", "coop:256:128", "coop+fold:0:128", "coop+fold8:256:128"] {
            let k: ConvKernels = s.parse().unwrap();
            assert_eq!(k.to_string(), s);
        }
        // Options in either order, defaults filled in.
        assert_eq!("splitk+small+fold".parse::<ConvKernels>().unwrap(), ConvKernels::SplitK { target: 256, min_slice: 128, fold: FOLD_ANY, small: true });
        assert!("splitk+fold4".parse::<ConvKernels>().unwrap().folds(4) && !"splitk+fold4".parse::<ConvKernels>().unwrap().folds(8));
        assert!("splitk+fold".parse::<ConvKernels>().unwrap().folds(64) && !"splitk+fold".parse::<ConvKernels>().unwrap().folds(1) && !"splitk".parse::<ConvKernels>().unwrap().folds(2));
        for bad in ["coop+small", "splitk+fold+fold", "splitk+fold4+fold", "splitk+fold1", "splitk+foldx", "gemm+fold", "gemm+fold4", "splitk+tiny", "splitk:x", "splitk:1:2:3", "winograd"] {
            assert!(bad.parse::<ConvKernels>().is_err(), "{bad}");
        }
    }

    #[test]
    fn small_tiles_replace_only_splits_they_can_fill() {
        let conv = |i: usize, o: usize, k: usize| ConvSpec { name: "c".into(), in_channels: i, out_channels: o, kernel: (k, k), stride: 1, padding: (k / 2, k / 2), bias: false };
        let small: ConvKernels = "splitk+small:256:128".parse().unwrap();
        // ResNet-50's layer4 conv3 (512→2048 at 7×7): 32 tiles of 64×64, 128 of 32×32.
        assert_eq!(small.for_layer(&conv(512, 2048, 1), Shape::new(2048, 7, 7)), LayerKernel::SmallGemm);
        // Its layer4 conv2 (3×3 512→512 at 7×7): 32×32 tiles give only 32 workgroups: split.
        assert!(matches!(small.for_layer(&conv(512, 512, 3), Shape::new(512, 7, 7)), LayerKernel::SplitK(_)));
        // A layer with enough 64×64 tiles is never split, nor shrunk.
        assert_eq!(small.for_layer(&conv(64, 256, 1), Shape::new(256, 56, 56)), LayerKernel::Gemm);
    }

    #[test]
    fn maps_too_wide_for_the_gemm_grid_take_the_direct_kernel() {
        let stem = ConvSpec { name: "conv1".into(), in_channels: 3, out_channels: 64, kernel: (7, 7), stride: 2, padding: (3, 3), bias: false };
        // 64-pixel tiles of a 2048×2048 map: 65536, one past the grid's axis.
        for k in ["gemm", "splitk:256:128", "splitk+small:256:128", "coop:256:128"] {
            let k: ConvKernels = k.parse().unwrap();
            assert_eq!(k.for_layer(&stem, Shape::new(64, 2048, 2048)), LayerKernel::Direct, "{k}");
            assert_ne!(k.for_layer(&stem, Shape::new(64, 2047, 2048)), LayerKernel::Direct, "{k}");
        }
        // 32×32 tiles only where their pixel tiles fit (a huge target makes every layer want them).
        let c = ConvSpec { name: "c".into(), in_channels: 256, out_channels: 64, kernel: (1, 1), stride: 1, padding: (0, 0), bias: false };
        let small: ConvKernels = "splitk+small:100000:16".parse().unwrap();
        assert!(matches!(small.for_layer(&c, Shape::new(64, 1500, 1500)), LayerKernel::SplitK(_)));
        assert_eq!(small.for_layer(&c, Shape::new(64, 1000, 1000)), LayerKernel::SmallGemm);
    }
}
