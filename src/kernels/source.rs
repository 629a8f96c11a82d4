//! WGSL sources: one file per kernel under `shaders/`, shared snippets under
//! `shaders/lib/` pulled in by `// #include lib/NAME.wgsl` lines (WGSL has
//! no includes), and the f16 specialisation of the storage aliases.

use std::borrow::Cow;

use crate::{bail, Result};

/// How activations and conv weights are stored in fast mode. In f16 the
/// tiled GEMM also multiplies in f16 (sums of 16 products, then f32
/// accumulators) and the tensor-core kernel multiplies f16 into f32; the
/// other kernels compute in f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    #[default]
    F32,
    /// Half the bytes; needs the adapter's `shader-f16`.
    F16,
}

crate::named_enum!(Precision { F32 = "f32", F16 = "f16" });

impl Precision {
    /// Bytes per stored activation or weight.
    pub fn bytes(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::F16 => 2,
        }
    }
}

/// A kernel's WGSL file and the storage aliases it declares as
/// `alias NAME = f32;` (switched to f16 on the f16 path).
pub struct Shader {
    pub file: &'static str,
    pub source: &'static str,
    pub aliases: &'static [&'static str],
    /// Only compiles on the f16 path (it keeps f16 tiles).
    pub f16_only: bool,
}

macro_rules! shader {
    ($file:literal, [$($alias:literal),*]) => {
        shader!($file, [$($alias),*], false)
    };
    ($file:literal, [$($alias:literal),*], $f16_only:expr) => {
        Shader { file: $file, source: include_str!(concat!("../../shaders/", $file)), aliases: &[$($alias),*], f16_only: $f16_only }
    };
}

/// Every kernel (the tests validate them all, in every specialisation).
pub const SHADERS: &[Shader] = &[
    shader!("conv2d.wgsl", ["act", "wt"]),
    shader!("conv2d_gemm.wgsl", ["act", "wt", "mul_t"]),
    shader!("conv2d_coop.wgsl", ["act", "wt"], true),
    shader!("conv_splitk.wgsl", ["act"]),
    shader!("batchnorm.wgsl", []),
    shader!("add_relu.wgsl", []),
    shader!("relu.wgsl", ["act"]),
    shader!("maxpool.wgsl", ["act"]),
    shader!("global_avg_pool.wgsl", ["act"]),
    shader!("dense.wgsl", []),
    shader!("softmax.wgsl", []),
    shader!("preprocess.wgsl", []),
    shader!("block_stats.wgsl", ["act"]),
    shader!("stats_norms.wgsl", []),
    shader!("conv2d_backward_input.wgsl", []),
    shader!("conv2d_backward_weight.wgsl", []),
    shader!("channel_sums.wgsl", []),
    shader!("batchnorm_stats.wgsl", []),
    shader!("scale_shift.wgsl", []),
    shader!("batchnorm_backward.wgsl", []),
    shader!("relu_backward.wgsl", []),
    shader!("maxpool_backward.wgsl", []),
    shader!("global_avg_pool_backward.wgsl", []),
    shader!("dense_backward.wgsl", []),
    shader!("cross_entropy.wgsl", []),
    shader!("sum_squares.wgsl", []),
];

/// The snippets kernels include.
pub const SNIPPETS: &[(&str, &str)] = &[
    ("lib/conv_epilogue.wgsl", include_str!("../../shaders/lib/conv_epilogue.wgsl")),
    ("lib/conv_params.wgsl", include_str!("../../shaders/lib/conv_params.wgsl")),
    ("lib/coop_native.wgsl", include_str!("../../shaders/lib/coop_native.wgsl")),
    ("lib/coop_portable.wgsl", include_str!("../../shaders/lib/coop_portable.wgsl")),
    ("lib/gemm_bindings.wgsl", include_str!("../../shaders/lib/gemm_bindings.wgsl")),
    ("lib/flat_index.wgsl", include_str!("../../shaders/lib/flat_index.wgsl")),
    ("lib/gemm_loads.wgsl", include_str!("../../shaders/lib/gemm_loads.wgsl")),
    ("lib/reduce.wgsl", include_str!("../../shaders/lib/reduce.wgsl")),
    ("lib/pool_window.wgsl", include_str!("../../shaders/lib/pool_window.wgsl")),
];

const INCLUDE: &str = "// #include ";

/// A file's text: built in, or natively from `RESNET_SHADER_DIR` when that
/// folder has a file of the same name (so kernel variants can be timed with
/// one `resnet bench` binary; tools/bench_gpu.sh does).
fn file(name: &str) -> Result<Cow<'static, str>> {
    #[cfg(not(target_arch = "wasm32"))]
    if let Some(text) = std::env::var_os("RESNET_SHADER_DIR").and_then(|d| std::fs::read_to_string(std::path::Path::new(&d).join(name)).ok()) {
        return Ok(text.into());
    }
    match SHADERS.iter().map(|s| (s.file, s.source)).chain(SNIPPETS.iter().copied()).find(|(n, _)| *n == name) {
        Some((_, text)) => Ok(text.into()),
        None => bail!("shader `{name}` does not exist"),
    }
}

/// A kernel's WGSL with its `// #include` lines replaced by the snippets;
/// `lib/coop_ops.wgsl` stands for the cooperative-matrix fragments, native
/// (`lib/coop_native.wgsl`) or portable (`lib/coop_portable.wgsl`).
pub fn expanded(name: &str, native_coop: bool) -> Result<String> {
    let mut out = String::new();
    for line in file(name)?.lines() {
        match line.trim_start().strip_prefix(INCLUDE).map(str::trim) {
            Some("lib/coop_ops.wgsl") => out.push_str(&file(if native_coop { "lib/coop_native.wgsl" } else { "lib/coop_portable.wgsl" })?),
            Some(snippet) => out.push_str(&file(snippet)?),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    Ok(out)
}

/// How a shader is specialised for one pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Spec {
    /// Storage of activations and weights: f16 sets the aliases and adds `enable f16;`.
    pub precision: Precision,
    /// The GEMM writes f32 split-K partial sums (`alias out_t = act;` → f32).
    pub partials: bool,
    /// Cooperative matrices in hardware (`enable wgpu_cooperative_matrix;`).
    pub native_coop: bool,
    /// The conv reads an f32 input (`alias in_t = act;` → f32): split-K
    /// partial sums (a folded input) or the network's f32 input tensor.
    pub f32_input: bool,
    /// The tiled GEMM on 32×32 output tiles instead of 64×64 (`const TS`).
    pub small_tile: bool,
}

/// The WGSL a pipeline compiles. Fails if an alias the shader is meant to
/// declare is not there in exactly that form, or an f16-only shader is asked for in f32.
pub fn specialised(shader: &Shader, spec: Spec) -> Result<String> {
    if shader.f16_only && spec.precision != Precision::F16 {
        bail!("{} works on f16 activations only: use the f16 path", shader.file);
    }
    let mut s = expanded(shader.file, spec.native_coop)?;
    if spec.small_tile {
        const TILE: &str = "const TS: u32 = 64u;";
        if !s.contains(TILE) {
            bail!("{}: expected the line `{TILE}` for 32×32 tiles", shader.file);
        }
        s = s.replacen(TILE, "const TS: u32 = 32u;", 1);
    }
    let mut set = |alias: &str, from: &str, to: &str| -> Result<()> {
        let (old, new) = (format!("alias {alias} = {from};"), format!("alias {alias} = {to};"));
        if !s.contains(&old) {
            bail!("{}: expected the line `{old}` to specialise", shader.file);
        }
        s = s.replacen(&old, &new, 1);
        Ok(())
    };
    if spec.partials {
        set("out_t", "act", "f32")?;
    }
    if spec.f32_input {
        set("in_t", "act", "f32")?;
    }
    if spec.precision == Precision::F16 {
        for alias in shader.aliases {
            set(alias, "f32", "f16")?;
        }
        // f16 products (conv2d_gemm.wgsl).
        s = s.replacen("const F16_MATH = false;", "const F16_MATH = true;", 1);
        s.insert_str(0, "enable f16;\n");
    }
    if spec.native_coop && shader.source.contains("coop_ops.wgsl") {
        s.insert_str(0, "enable wgpu_cooperative_matrix;\n");
    }
    Ok(s)
}

/// Every specialisation of every shader: (description, WGSL, needs
/// cooperative matrices). The tests parse and validate each with naga.
pub fn all_specialisations() -> Result<Vec<(String, String, bool)>> {
    let mut out = Vec::new();
    for shader in SHADERS {
        let coop = shader.source.contains("coop_ops.wgsl");
        for precision in [Precision::F32, Precision::F16] {
            if shader.f16_only && precision == Precision::F32 {
                continue;
            }
            for partials in [false, true] {
                if partials && (!shader.source.contains("alias out_t") || precision == Precision::F32) {
                    continue;
                }
                for (native_coop, f32_input) in [(false, false), (true, false), (false, true), (true, true)] {
                    if (native_coop && !coop) || (f32_input && !shader.source.contains("alias in_t")) {
                        continue;
                    }
                    // 32×32 tiles: the tiled GEMM, never split.
                    for small_tile in [false, true] {
                        if small_tile && (partials || !shader.source.contains("const TS: u32 = 64u;")) {
                            continue;
                        }
                        let spec = Spec { precision, partials, native_coop, f32_input, small_tile };
                        out.push((format!("{} {spec:?}", shader.file), specialised(shader, spec)?, native_coop));
                    }
                }
            }
        }
    }
    Ok(out)
}

pub fn shader(file: &str) -> &'static Shader {
    SHADERS.iter().find(|s| s.file == file).expect("a shader listed in SHADERS")
}
