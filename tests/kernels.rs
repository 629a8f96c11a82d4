//! Every WGSL kernel against a plain CPU computation, on awkward shapes:
//! odd sizes, stride 2 on odd inputs, 1×1 / 3×3 / 7×7 kernels, channel
//! counts that are not multiples of 4, dispatches past 65535 workgroups;
//! and the training kernels (batched forward, backward passes) likewise.

mod common;

use common::{assert_close, ctx, Rng};
use resnet::kernels::{conv_weights_km, conv_weights_oihw, gemm_splits, pack_batchnorm, storage_buffer_as, ConvBuffers, ConvParams, FoldedInput, Kernels, LayerKernel, PoolParams};
use resnet::kernels::source;
use resnet::Preprocess;

#[test]
fn every_shader_parses_and_validates_with_naga() {
    // Each in f32 and f16, the GEMMs writing f32 partial sums, and the
    // matrix-fragment conv in its portable and cooperative-matrix forms;
    // the convs reading an f32 input too (a folded input, or the network's
    // input on the f16 path: 2 for conv2d, 3 for conv2d_gemm, 4 for coop),
    // and the tiled GEMM on 32×32 tiles (4: f32 and f16, each input type).
    let all = source::all_specialisations().unwrap();
    assert_eq!(all.len(), 2 * source::SHADERS.len() - 1 + 1 + 3 + 2 + 3 + 4 + 4);
    assert!(all.iter().any(|(_, src, native)| *native && src.starts_with("enable wgpu_cooperative_matrix;") && src.contains("coopMultiplyAdd")));
    // The f16 GEMM multiplies in f16 from f16 tiles; the f32 one does not.
    let gemm = |precision| source::specialised(source::shader("conv2d_gemm.wgsl"), source::Spec { precision, ..Default::default() }).unwrap();
    let f16 = gemm(resnet::Precision::F16);
    assert!(f16.contains("const F16_MATH = true;") && f16.contains("alias mul_t = f16;"));
    assert!(gemm(resnet::Precision::F32).contains("const F16_MATH = false;"));
    for (name, src, native) in all {
        let module = naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&src)));
        let mut caps = naga::valid::Capabilities::SHADER_FLOAT16;
        if native {
            caps |= naga::valid::Capabilities::COOPERATIVE_MATRIX;
        }
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps).validate(&module).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }
    // The shaders folder holds nothing the crate does not ship.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
    let count = |d: &str| std::fs::read_dir(d).unwrap().filter(|e| e.as_ref().unwrap().path().is_file()).count();
    assert_eq!(count(dir), source::SHADERS.len());
    assert_eq!(count(&format!("{dir}/lib")), source::SNIPPETS.len());
}

/// Every kernel, in every specialisation and with each override the engine
/// sets, through naga's SPIR-V backend (what wgpu does on Vulkan), and, where
/// `SPIRV_VAL` names SPIRV-Tools' validator (tools/test.sh sets it), checked
/// by it for Vulkan 1.3: among them the tensor-core kernel, which lavapipe
/// cannot run, so its cooperative-matrix SPIR-V is checked here at least.
#[test]
fn every_shader_compiles_to_valid_vulkan_spirv() {
    let validator = std::env::var_os("SPIRV_VAL").filter(|v| !v.is_empty());
    let dir = std::env::temp_dir().join(format!("resnet-spirv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut checked = 0;
    let mut coop = 0;
    for (name, src, native) in source::all_specialisations().unwrap() {
        let module = naga::front::wgsl::parse_str(&src).unwrap();
        let caps = naga::valid::Capabilities::SHADER_FLOAT16 | if native { naga::valid::Capabilities::COOPERATIVE_MATRIX } else { naga::valid::Capabilities::empty() };
        let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps).validate(&module).unwrap();
        let overrides: Vec<&str> = ["POINTWISE", "FOLDED"].into_iter().filter(|o| src.contains(&format!("override {o}"))).collect();
        for set in std::iter::once(None).chain(overrides.iter().map(Some)) {
            let constants: naga::back::PipelineConstants = set.map(|o| (o.to_string(), 1.0)).into_iter().collect();
            let (module, info) = naga::back::pipeline_constants::process_overrides(&module, &info, None, &constants).unwrap_or_else(|e| panic!("{name} {set:?}: {e:?}"));
            let options = naga::back::spv::Options { lang_version: (1, 3), ..Default::default() };
            let pipeline = naga::back::spv::PipelineOptions { shader_stage: naga::ShaderStage::Compute, entry_point: "main".into() };
            let words = naga::back::spv::write_vec(&module, &info, &options, Some(&pipeline)).unwrap_or_else(|e| panic!("{name} {set:?}: {e:?}"));
            checked += 1;
            coop += native as usize;
            let Some(val) = &validator else { continue };
            let file = dir.join(format!("{checked}.spv"));
            std::fs::write(&file, bytemuck::cast_slice::<u32, u8>(&without_workgroup_strides(&words))).unwrap();
            let out = std::process::Command::new(val).arg("--target-env").arg("vulkan1.3").arg(&file).output().unwrap_or_else(|e| panic!("SPIRV_VAL={val:?}: {e}"));
            assert!(out.status.success(), "{name} {set:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    assert!(checked > 60 && coop >= 4, "{checked} modules, {coop} with cooperative matrices");
}

/// `words` without ArrayStride decorations on workgroup arrays. naga puts
/// them there, and SPIRV-Tools since 2025 flags explicit layouts in
/// workgroup memory (VUID-StandaloneSpirv-None-10684), which drivers accept
/// (lavapipe runs these kernels); everything else is validated as written.
fn without_workgroup_strides(words: &[u32]) -> Vec<u32> {
    let (header, body) = words.split_at(5);
    let mut insts = Vec::new();
    let mut i = 0;
    while i < body.len() {
        let n = (body[i] >> 16).max(1) as usize;
        insts.push(&body[i..(i + n).min(body.len())]);
        i += n;
    }
    const TYPE_POINTER: u32 = 32;
    const VARIABLE: u32 = 59;
    const DECORATE: u32 = 71;
    const WORKGROUP: u32 = 4;
    const ARRAY_STRIDE: u32 = 6;
    let pointee: std::collections::HashMap<u32, u32> = insts.iter().filter(|w| w[0] & 0xffff == TYPE_POINTER).map(|w| (w[1], w[3])).collect();
    let workgroup: std::collections::HashSet<u32> = insts.iter().filter(|w| w[0] & 0xffff == VARIABLE && w[3] == WORKGROUP).filter_map(|w| pointee.get(&w[1]).copied()).collect();
    let keep = |w: &[u32]| !(w[0] & 0xffff == DECORATE && workgroup.contains(&w[1]) && w[2] == ARRAY_STRIDE);
    header.iter().copied().chain(insts.into_iter().filter(|w| keep(w)).flat_map(|w| w.iter().copied())).collect()
}

#[test]
fn specialisation_fails_loudly_when_an_alias_is_missing() {
    let broken = source::Shader { file: "relu.wgsl", source: "", aliases: &["act", "nope"], f16_only: false };
    let f16 = source::Spec { precision: resnet::Precision::F16, ..Default::default() };
    let e = source::specialised(&broken, f16).unwrap_err().to_string();
    assert!(e.contains("alias nope = f32;"), "{e}");
    assert!(source::specialised(&broken, source::Spec::default()).is_ok(), "f32 changes nothing");
    let coop = source::shader("conv2d_coop.wgsl");
    assert!(source::specialised(coop, source::Spec::default()).unwrap_err().to_string().contains("f16"), "the fragment kernel is f16-only");
}

/// Every uniform block the host writes has the layout its WGSL struct has:
/// the same named fields at the same byte offsets, and the same size.
#[test]
fn uniform_blocks_match_their_wgsl_structs() {
    let layouts = resnet::kernels::uniform_layouts();
    let mut covered = std::collections::HashSet::new();
    for u in &layouts {
        for file in u.shaders {
            covered.insert(*file);
            let shader = source::shader(file);
            let precision = if shader.f16_only { resnet::Precision::F16 } else { resnet::Precision::F32 };
            let src = source::specialised(shader, source::Spec { precision, ..Default::default() }).unwrap();
            let module = naga::front::wgsl::parse_str(&src).unwrap();
            // The struct behind the shader's one uniform binding.
            let (_, var) = module.global_variables.iter().find(|(_, v)| v.space == naga::AddressSpace::Uniform).unwrap_or_else(|| panic!("{file}: no uniform"));
            let naga::TypeInner::Struct { members, span } = &module.types[var.ty].inner else { panic!("{file}: uniform is not a struct") };
            let wgsl: Vec<(String, usize)> =
                members.iter().filter(|m| !m.name.as_deref().unwrap_or("_").starts_with('_')).map(|m| (m.name.clone().unwrap(), m.offset as usize)).collect();
            let rust: Vec<(String, usize)> = u.fields.iter().filter(|(n, _)| !n.starts_with('_')).map(|(n, o)| (n.to_string(), *o)).collect();
            assert_eq!(wgsl, rust, "{file}: WGSL Params vs Rust {}", u.rust_name);
            assert_eq!(*span as usize, u.size, "{file}: size of Params vs Rust {}", u.rust_name);
        }
    }
    // Every shader with a uniform block is covered.
    for s in source::SHADERS {
        assert!(covered.contains(s.file), "{} has no Rust uniform declared", s.file);
    }
}

#[derive(Clone, Copy)]
struct ConvCase {
    cin: usize,
    h: usize,
    w: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
    bias: bool,
    residual: bool,
    relu: bool,
}

impl ConvCase {
    fn out_size(&self) -> (usize, usize) {
        ((self.h + 2 * self.pad - self.k) / self.stride + 1, (self.w + 2 * self.pad - self.k) / self.stride + 1)
    }
    fn params(&self) -> ConvParams {
        let (oh, ow) = self.out_size();
        ConvParams {
            in_c: self.cin as u32,
            in_h: self.h as u32,
            in_w: self.w as u32,
            out_c: self.cout as u32,
            out_h: oh as u32,
            out_w: ow as u32,
            k_h: self.k as u32,
            k_w: self.k as u32,
            stride: self.stride as u32,
            pad_y: self.pad as u32,
            pad_x: self.pad as u32,
            flags: if self.relu { ConvParams::RELU } else { 0 },
            ..Default::default()
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn conv_cpu(x: &[f32], wt: &[f32], bias: Option<&[f32]>, res: Option<&[f32]>, c: &ConvCase, oh: usize, ow: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; c.cout * oh * ow];
    for co in 0..c.cout {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut s = 0.0f64;
                for ci in 0..c.cin {
                    for ky in 0..c.k {
                        for kx in 0..c.k {
                            let iy = (oy * c.stride + ky) as isize - c.pad as isize;
                            let ix = (ox * c.stride + kx) as isize - c.pad as isize;
                            if iy < 0 || ix < 0 || iy >= c.h as isize || ix >= c.w as isize {
                                continue;
                            }
                            s += x[(ci * c.h + iy as usize) * c.w + ix as usize] as f64
                                * wt[((co * c.cin + ci) * c.k + ky) * c.k + kx] as f64;
                        }
                    }
                }
                let o = (co * oh + oy) * ow + ox;
                let mut v = s as f32 + bias.map_or(0.0, |b| b[co]);
                v += res.map_or(0.0, |r| r[o]);
                out[o] = if c.relu { v.max(0.0) } else { v };
            }
        }
    }
    out
}

/// Convolutions every conv kernel is held to.
fn conv_cases() -> Vec<ConvCase> {
    vec![
        // 7×7/2 stem-like on an odd input, 5 output channels (not a multiple of 4).
        ConvCase { cin: 3, h: 17, w: 13, cout: 5, k: 7, stride: 2, pad: 3, bias: true, residual: false, relu: true },
        // 3×3/2 on odd sizes with a fused residual add.
        ConvCase { cin: 6, h: 9, w: 11, cout: 7, k: 3, stride: 2, pad: 1, bias: false, residual: true, relu: false },
        // 1×1, stride 1 and stride 2 on odd maps.
        ConvCase { cin: 5, h: 8, w: 7, cout: 3, k: 1, stride: 1, pad: 0, bias: false, residual: false, relu: false },
        ConvCase { cin: 4, h: 11, w: 7, cout: 9, k: 1, stride: 2, pad: 0, bias: true, residual: false, relu: true },
        // Everything at once, and wide channel counts (several 64×64 tiles, partial ones at the edges).
        ConvCase { cin: 67, h: 6, w: 5, cout: 130, k: 3, stride: 1, pad: 1, bias: true, residual: true, relu: true },
        ConvCase { cin: 33, h: 19, w: 21, cout: 70, k: 3, stride: 2, pad: 1, bias: true, residual: false, relu: true },
        // A 1×1 map with a 3×3 window: only the centre tap is inside.
        ConvCase { cin: 2, h: 1, w: 1, cout: 4, k: 3, stride: 1, pad: 1, bias: false, residual: false, relu: false },
        // 5×5 without padding (valid).
        ConvCase { cin: 3, h: 12, w: 9, cout: 6, k: 5, stride: 1, pad: 0, bias: true, residual: false, relu: false },
        // 1×1 stride 1 wide: the GEMM's gather-free POINTWISE path, with a partial K step.
        ConvCase { cin: 67, h: 9, w: 11, cout: 130, k: 1, stride: 1, pad: 0, bias: true, residual: true, relu: true },
        // A deep K on a 7×7 map (ResNet's last stage in small): split-K territory.
        ConvCase { cin: 150, h: 7, w: 7, cout: 70, k: 3, stride: 1, pad: 1, bias: true, residual: true, relu: true },
    ]
}

#[test]
fn conv2d_matches_cpu_on_awkward_shapes() {
    let cx = ctx();
    let cases = conv_cases();
    let mut rng = Rng::new(1);
    for (n, c) in cases.iter().enumerate() {
        let (oh, ow) = c.out_size();
        let x = rng.vec(c.cin * c.h * c.w);
        let wt = rng.vec(c.cout * c.cin * c.k * c.k);
        let bias = rng.vec(c.cout);
        let res = rng.vec(c.cout * oh * ow);
        let want = conv_cpu(&x, &wt, c.bias.then_some(&bias[..]), c.residual.then_some(&res[..]), c, oh, ow);

        let xb = cx.upload(&x);
        let wb = cx.upload(&conv_weights_km(&wt, c.cout));
        let bb = cx.upload(&bias);
        let rb = cx.upload(&res);
        let p = c.params();
        // F(x) alone: conv + bias, before the residual and the ReLU.
        let want_main = conv_cpu(&x, &wt, c.bias.then_some(&bias[..]), None, &ConvCase { relu: false, ..*c }, oh, ow);
        // The direct kernel (inspect mode), the tiled implicit GEMM (fast
        // mode) and the GEMM with K cut into 3 and 7 slices, on the same case.
        let scratch = cx.zeros(7 * want.len());
        for (kernel, splits) in [("direct", 0), ("gemm", 1), ("gemm 32×32 tiles", 1), ("gemm", 3), ("gemm", 7)] {
            let (ob, mb) = (cx.zeros(want.len()), cx.zeros(want.len()));
            let bufs = ConvBuffers {
                input: &xb,
                weight: &wb,
                bias: c.bias.then_some(&bb),
                residual: c.residual.then_some(&rb),
                output: &ob,
                main_out: Some(&mb),
                fold: None,
                f32_input: false,
            };
            let d = match splits {
                0 => cx.k.conv2d("conv", p, &bufs).unwrap(),
                1 if kernel.contains("32") => cx.k.conv2d_gemm_small("conv", p, &bufs).unwrap(),
                1 => cx.k.conv2d_gemm("conv", p, &bufs).unwrap(),
                s => cx.k.conv2d_gemm_split("conv", p, &bufs, s, &scratch).unwrap(),
            };
            cx.run(&[&d]);
            let what = format!("conv case {n} ({kernel}, {splits} K slices)");
            assert_close(&what, &cx.read(&ob, want.len()), &want, 1e-5, 1e-5);
            assert_close(&format!("{what} F(x)"), &cx.read(&mb, want.len()), &want_main, 1e-5, 1e-5);
        }
    }
}

/// f16-rounded copies, as the f16 path stores them.
fn round_f16(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect()
}

/// Reads `n` f16 values.
fn read_f16(cx: &common::Ctx, buf: &wgpu::Buffer, n: usize) -> Vec<f32> {
    let bytes = (n * 2).div_ceil(4) * 4;
    let staging = cx.gpu.device.create_buffer(&wgpu::BufferDescriptor { label: None, size: bytes as u64, usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST, mapped_at_creation: false });
    let mut enc = cx.gpu.device.create_command_encoder(&Default::default());
    enc.copy_buffer_to_buffer(buf, 0, &staging, 0, bytes as u64);
    cx.gpu.queue.submit([enc.finish()]);
    let b = pollster::block_on(resnet::gpu::map_bytes(&cx.gpu, &staging, bytes as u64)).unwrap();
    b.chunks_exact(2).take(n).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect()
}

/// The f16 convs against the CPU on every conv case, without and with
/// split-K: the matrix-fragment conv (`conv2d_coop.wgsl`) in its portable
/// form — the same tiles, fragment offsets and layouts as the tensor-core
/// form — and the tiled GEMM with f16 products.
#[test]
fn f16_convs_match_cpu() {
    let cx = ctx();
    if !cx.gpu.features.contains(wgpu::Features::SHADER_F16) {
        return; // lavapipe has shader-f16; an adapter without it never runs this kernel
    }
    let k16 = Kernels::new(&cx.gpu.device, &cx.gpu.queue, resnet::Precision::F16);
    assert!(!k16.native_coop(), "lavapipe has no cooperative matrices: this runs the portable twin");
    let dev = &cx.gpu.device;
    let f16 = |v: &[f32]| storage_buffer_as(dev, "f16", v, resnet::Precision::F16);
    let mut rng = Rng::new(21);
    for (n, c) in conv_cases().iter().enumerate() {
        let (oh, ow) = c.out_size();
        // Inputs as f16 stores them, so the reference sees the same operands.
        let x = round_f16(&rng.vec(c.cin * c.h * c.w));
        let wt = round_f16(&rng.vec(c.cout * c.cin * c.k * c.k));
        let bias = rng.vec(c.cout);
        let res = round_f16(&rng.vec(c.cout * oh * ow));
        let want = conv_cpu(&x, &wt, c.bias.then_some(&bias[..]), c.residual.then_some(&res[..]), c, oh, ow);
        let want_main = conv_cpu(&x, &wt, c.bias.then_some(&bias[..]), None, &ConvCase { relu: false, ..*c }, oh, ow);
        let (xb, wb, bb, rb) = (f16(&x), f16(&conv_weights_km(&wt, c.cout)), cx.upload(&bias), f16(&res));
        let p = c.params();
        let scratch = cx.zeros(5 * want.len());
        // The same values as an f32 input (the network's input tensor,
        // which stays f32 on the f16 path).
        let xb32 = cx.upload(&x);
        let runs = [("coop", 1, false), ("coop", 5, false), ("gemm", 1, false), ("gemm32", 1, false), ("gemm", 3, false), ("direct", 0, true), ("gemm", 1, true), ("gemm32", 1, true), ("gemm", 3, true), ("coop", 1, true), ("coop", 5, true)];
        for (kernel, splits, f32_input) in runs {
            let (ob, mb) = (f16(&vec![0.0; want.len()]), f16(&vec![0.0; want.len()]));
            let input = if f32_input { &xb32 } else { &xb };
            let bufs = ConvBuffers { input, weight: &wb, bias: c.bias.then_some(&bb), residual: c.residual.then_some(&rb), output: &ob, main_out: Some(&mb), fold: None, f32_input };
            let d = match (kernel, splits) {
                ("direct", _) => k16.conv2d("direct", p, &bufs).unwrap(),
                ("gemm32", _) => k16.conv2d_gemm_small("gemm32", p, &bufs).unwrap(),
                ("coop", s) => k16.conv2d_coop("coop", p, &bufs, s, &scratch).unwrap(),
                (_, 1) => k16.conv2d_gemm("gemm", p, &bufs).unwrap(),
                (_, s) => k16.conv2d_gemm_split("gemm", p, &bufs, s, &scratch).unwrap(),
            };
            cx.run(&[&d]);
            // coop and direct: exact products, f32 sums, one f16 rounding of
            // the result. gemm: f16 products summed in f16 over each K step
            // of 16, those sums added in f32.
            let tol = if kernel.starts_with("gemm") { 4e-3 } else { 2e-3 };
            let input = if f32_input { "f32" } else { "f16" };
            let what = format!("f16 {kernel} conv case {n}, K in {splits}, {input} input");
            assert_close(&what, &read_f16(cx, &ob, want.len()), &want, tol, 2e-3);
            assert_close(&format!("{what} F(x)"), &read_f16(cx, &mb, want.len()), &want_main, tol, 2e-3);
        }
    }
}

/// Two convs in a row, the first split (K in 3) with its partial sums left
/// unreduced (`conv_partials`) and finished by the second one's loads
/// (`FoldedInput`): bias, ReLU, and padding that stays zero (the producer's
/// bias is positive, so a padded tap finished by mistake would show).
#[test]
fn folded_split_k_input_matches_cpu() {
    let cx = ctx();
    let mut rng = Rng::new(31);
    let chains = [
        // 1×1 into a 3×3 with padding and a residual, ragged tiles.
        (
            ConvCase { cin: 40, h: 9, w: 11, cout: 67, k: 1, stride: 1, pad: 0, bias: true, residual: false, relu: true },
            ConvCase { cin: 67, h: 9, w: 11, cout: 70, k: 3, stride: 1, pad: 1, bias: true, residual: true, relu: true },
        ),
        // 3×3 into a 1×1 (the gather-free POINTWISE loads).
        (
            ConvCase { cin: 33, h: 7, w: 7, cout: 64, k: 3, stride: 1, pad: 1, bias: true, residual: false, relu: true },
            ConvCase { cin: 64, h: 7, w: 7, cout: 130, k: 1, stride: 1, pad: 0, bias: true, residual: false, relu: false },
        ),
        // No bias, no ReLU in the producer; a strided 3×3 reader.
        (
            ConvCase { cin: 45, h: 13, w: 9, cout: 66, k: 1, stride: 1, pad: 0, bias: false, residual: false, relu: false },
            ConvCase { cin: 66, h: 13, w: 9, cout: 64, k: 3, stride: 2, pad: 1, bias: false, residual: false, relu: true },
        ),
    ];
    let k16 = cx.gpu.features.contains(wgpu::Features::SHADER_F16).then(|| Kernels::new(&cx.gpu.device, &cx.gpu.queue, resnet::Precision::F16));
    for (n, (a, b)) in chains.iter().enumerate() {
        let (mh, mw) = a.out_size();
        assert_eq!((mh, mw, a.cout), (b.h, b.w, b.cin));
        let (oh, ow) = b.out_size();
        let x = round_f16(&rng.vec(a.cin * a.h * a.w));
        let wa = round_f16(&rng.vec(a.cout * a.cin * a.k * a.k));
        let ba: Vec<f32> = rng.vec(a.cout).iter().map(|v| v.abs() + 0.25).collect();
        let wb = round_f16(&rng.vec(b.cout * b.cin * b.k * b.k));
        let bb = rng.vec(b.cout);
        let res = round_f16(&rng.vec(b.cout * oh * ow));
        let mid = conv_cpu(&x, &wa, a.bias.then_some(&ba[..]), None, a, mh, mw);
        let want = conv_cpu(&mid, &wb, b.bias.then_some(&bb[..]), b.residual.then_some(&res[..]), b, oh, ow);
        let splits = LayerKernel::SplitK(3).splits(a.cin * a.k * a.k);
        assert_eq!(splits, 3);
        let partial_sums = cx.zeros(splits as usize * mid.len());
        let scratch = cx.zeros(4 * want.len());
        let (bab, bbb) = (cx.upload(&ba), cx.upload(&bb));
        let fold = Some(FoldedInput { splits, bias: a.bias.then_some(&bab), relu: a.relu });

        // f32: the GEMM reader without and with its own split.
        let (xb, wab, wbb, rb) = (cx.upload(&x), cx.upload(&conv_weights_km(&wa, a.cout)), cx.upload(&conv_weights_km(&wb, b.cout)), cx.upload(&res));
        let first = ConvBuffers { input: &xb, weight: &wab, bias: None, residual: None, output: &partial_sums, main_out: None, fold: None, f32_input: false };
        let produce = cx.k.conv_partials("first", a.params(), &first, LayerKernel::SplitK(3)).unwrap();
        for reader_splits in [1, 4] {
            let ob = cx.zeros(want.len());
            let second = ConvBuffers { input: &partial_sums, weight: &wbb, bias: b.bias.then_some(&bbb), residual: b.residual.then_some(&rb), output: &ob, main_out: None, fold, f32_input: false };
            let kernel = if reader_splits == 1 { LayerKernel::Gemm } else { LayerKernel::SplitK(reader_splits) };
            let read = cx.k.conv("second", b.params(), &second, kernel, Some(&scratch)).unwrap();
            cx.run(&[&produce, &read]);
            assert_close(&format!("chain {n}, reader K in {reader_splits}"), &cx.read(&ob, want.len()), &want, 1e-5, 1e-5);
        }
        // The direct kernel cannot read partial sums: refused, not miscomputed.
        let ob = cx.zeros(want.len());
        let second = ConvBuffers { input: &partial_sums, weight: &wbb, bias: None, residual: None, output: &ob, main_out: None, fold, f32_input: false };
        assert!(cx.k.conv("second", b.params(), &second, LayerKernel::Direct, None).is_err());

        // f16: the matrix-fragment kernel on both sides (its portable twin here).
        let Some(k16) = &k16 else { continue };
        let f16 = |v: &[f32]| storage_buffer_as(&cx.gpu.device, "f16", v, resnet::Precision::F16);
        let (xb, wab, wbb, rb, ob) = (f16(&x), f16(&conv_weights_km(&wa, a.cout)), f16(&conv_weights_km(&wb, b.cout)), f16(&res), f16(&vec![0.0; want.len()]));
        let first = ConvBuffers { input: &xb, weight: &wab, bias: None, residual: None, output: &partial_sums, main_out: None, fold: None, f32_input: false };
        let produce = k16.conv_partials("first", a.params(), &first, LayerKernel::Coop(3)).unwrap();
        let second = ConvBuffers { input: &partial_sums, weight: &wbb, bias: b.bias.then_some(&bbb), residual: b.residual.then_some(&rb), output: &ob, main_out: None, fold, f32_input: false };
        let read = k16.conv("second", b.params(), &second, LayerKernel::Coop(2), Some(&scratch)).unwrap();
        cx.run(&[&produce, &read]);
        // The reader's tiles hold the finished values as f16.
        let want16 = conv_cpu(&round_f16(&mid), &wb, b.bias.then_some(&bb[..]), b.residual.then_some(&res[..]), b, oh, ow);
        assert_close(&format!("chain {n}, f16 fragments"), &read_f16(cx, &ob, want.len()), &want16, 2e-3, 2e-3);
    }
}

#[test]
fn gemm_splits_fill_the_gpu_without_tiny_slices() {
    // ResNet-50's last 3×3 conv at 224: 8 tiles, K = 4608 → 16 slices of 288.
    assert_eq!(gemm_splits(512, 49, 4608, 128, 128), 16);
    // Enough tiles already: no split.
    assert_eq!(gemm_splits(256, 3136, 576, 128, 128), 1);
    // Short K: no slice under 128.
    assert_eq!(gemm_splits(64, 49, 200, 128, 128), 1);
    assert_eq!(gemm_splits(2048, 49, 512, 128, 128), 4);
    // A longer minimum slice: fewer, longer slices.
    assert_eq!(gemm_splits(512, 49, 4608, 128, 512), 9);
}

#[test]
fn batchnorm_matches_cpu() {
    let cx = ctx();
    let mut rng = Rng::new(2);
    let (c, h, w, eps) = (7, 5, 3, 1e-3f32);
    let x = rng.vec(c * h * w);
    let gamma = rng.vec(c);
    let beta = rng.vec(c);
    let mean = rng.vec(c);
    let var: Vec<f32> = rng.vec(c).iter().map(|v| v.abs() * 2.0).collect();
    let want: Vec<f32> = (0..c * h * w)
        .map(|i| {
            let ch = i / (h * w);
            (x[i] - mean[ch]) / (var[ch] + eps).sqrt() * gamma[ch] + beta[ch]
        })
        .collect();
    let (xb, bnb, ob) = (cx.upload(&x), cx.upload(&pack_batchnorm(&gamma, &beta, &mean, &var)), cx.zeros(want.len()));
    let d = cx.k.batchnorm("bn", c, h * w, eps, &xb, &bnb, &ob).unwrap();
    cx.run(&[&d]);
    assert_close("batchnorm", &cx.read(&ob, want.len()), &want, 1e-6, 1e-6);
}

#[test]
fn relu_and_add_relu_match_cpu_past_the_workgroup_limit() {
    let cx = ctx();
    let mut rng = Rng::new(3);
    // 64 × 70 000 + 13 elements: more than 65535 workgroups, so the 2-D grid is exercised.
    let n = 64 * 70_000 + 13;
    let a = rng.vec(n);
    let b = rng.vec(n);
    let (ab, bb, ob, rb) = (cx.upload(&a), cx.upload(&b), cx.zeros(n), cx.zeros(n));
    let add = cx.k.add_relu("add", n, &ab, &bb, &ob).unwrap();
    let relu = cx.k.relu("relu", n, &ab, &rb).unwrap();
    cx.run(&[&add, &relu]);
    let want_add: Vec<f32> = a.iter().zip(&b).map(|(x, y)| (x + y).max(0.0)).collect();
    let want_relu: Vec<f32> = a.iter().map(|x| x.max(0.0)).collect();
    assert_eq!(cx.read(&ob, n), want_add);
    assert_eq!(cx.read(&rb, n), want_relu);
}

#[test]
fn maxpool_matches_cpu_with_and_without_padding() {
    let cx = ctx();
    let mut rng = Rng::new(4);
    for (c, h, w, k, s, pad) in [(5, 11, 8, 3, 2, 1), (3, 9, 9, 3, 2, 0), (2, 7, 10, 2, 2, 0), (4, 1, 1, 3, 2, 1)] {
        let oh = (h + 2 * pad - k) / s + 1;
        let ow = (w + 2 * pad - k) / s + 1;
        // All-negative inputs: padding must never win.
        let x: Vec<f32> = rng.vec(c * h * w).iter().map(|v| v - 2.0).collect();
        let mut want = vec![f32::MIN; c * oh * ow];
        for ch in 0..c {
            for oy in 0..oh {
                for ox in 0..ow {
                    for ky in 0..k {
                        for kx in 0..k {
                            let iy = (oy * s + ky) as isize - pad as isize;
                            let ix = (ox * s + kx) as isize - pad as isize;
                            if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                let o = &mut want[(ch * oh + oy) * ow + ox];
                                *o = o.max(x[(ch * h + iy as usize) * w + ix as usize]);
                            }
                        }
                    }
                }
            }
        }
        let (xb, ob) = (cx.upload(&x), cx.zeros(want.len()));
        let p = PoolParams { channels: c as u32, in_h: h as u32, in_w: w as u32, out_h: oh as u32, out_w: ow as u32, kernel: k as u32, stride: s as u32, pad: pad as u32 };
        let d = cx.k.maxpool("pool", p, &xb, &ob).unwrap();
        cx.run(&[&d]);
        assert_eq!(cx.read(&ob, want.len()), want, "maxpool {c}×{h}×{w} k{k} s{s} p{pad}");
    }
}

#[test]
fn global_avg_pool_matches_cpu() {
    let cx = ctx();
    let mut rng = Rng::new(5);
    for (c, h, w) in [(13, 7, 5), (3, 33, 31), (2049, 1, 1)] {
        let x = rng.vec(c * h * w);
        let want: Vec<f32> = (0..c).map(|ch| x[ch * h * w..(ch + 1) * h * w].iter().map(|v| *v as f64).sum::<f64>() as f32 / (h * w) as f32).collect();
        let (xb, ob) = (cx.upload(&x), cx.zeros(c));
        let d = cx.k.global_avg_pool("gap", c, h * w, &xb, &ob).unwrap();
        cx.run(&[&d]);
        assert_close(&format!("gap {c}×{h}×{w}"), &cx.read(&ob, c), &want, 1e-5, 1e-6);
    }
}

#[test]
fn dense_matches_cpu() {
    let cx = ctx();
    let mut rng = Rng::new(6);
    for (inf, outf) in [(130, 1001), (3, 5), (2048, 7)] {
        let x = rng.vec(inf);
        let wt = rng.vec(inf * outf);
        let b = rng.vec(outf);
        let want: Vec<f32> = (0..outf).map(|o| b[o] + (0..inf).map(|i| wt[o * inf + i] as f64 * x[i] as f64).sum::<f64>() as f32).collect();
        let (xb, wb, bb, ob) = (cx.upload(&x), cx.upload(&wt), cx.upload(&b), cx.zeros(outf));
        let d = cx.k.dense("fc", inf, outf, &xb, &wb, &bb, &ob).unwrap();
        cx.run(&[&d]);
        assert_close(&format!("dense {inf}→{outf}"), &cx.read(&ob, outf), &want, 1e-5, 1e-5);
    }
}

#[test]
fn softmax_matches_cpu_and_is_stable() {
    let cx = ctx();
    let mut rng = Rng::new(7);
    for (n, scale) in [(1000, 5.0), (6, 1.0), (3001, 200.0)] {
        let x: Vec<f32> = rng.vec(n).iter().map(|v| v * scale).collect();
        let m = x.iter().fold(f32::MIN, |a, b| a.max(*b)) as f64;
        let z: f64 = x.iter().map(|v| (*v as f64 - m).exp()).sum();
        let want: Vec<f32> = x.iter().map(|v| ((*v as f64 - m).exp() / z) as f32).collect();
        let (xb, ob) = (cx.upload(&x), cx.zeros(n));
        let d = cx.k.softmax("softmax", n, &xb, &ob).unwrap();
        cx.run(&[&d]);
        let got = cx.read(&ob, n);
        assert!(got.iter().all(|v| v.is_finite()));
        assert_close(&format!("softmax {n}"), &got, &want, 1e-5, 1e-7);
    }
}

/// PIL's antialiased bilinear resize (what torchvision's `Resize` runs),
/// written from its published algorithm: separable triangle filter whose
/// support grows with the downscale factor, weights normalised per pixel.
fn pil_coeffs(in_size: usize, out_size: usize) -> Vec<(usize, Vec<f64>)> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5) as isize).max(0) as usize;
            let xmax = ((center + support + 0.5) as usize).min(in_size);
            let mut w: Vec<f64> = (xmin..xmax).map(|x| (1.0 - ((x as f64 - center + 0.5) / filterscale).abs()).max(0.0)).collect();
            let total: f64 = w.iter().sum();
            w.iter_mut().for_each(|v| *v /= total);
            (xmin, w)
        })
        .collect()
}

fn preprocess_cpu(rgba: &[u8], w: usize, h: usize, p: &Preprocess) -> Vec<f32> {
    let g = p.geometry(w, h).unwrap();
    let cx = pil_coeffs(w, g.resized_w);
    let cy = pil_coeffs(h, g.resized_h);
    let mut out = vec![0.0f32; 3 * p.crop_h * p.crop_w];
    for oy in 0..p.crop_h {
        for ox in 0..p.crop_w {
            let (y0, wy) = &cy[oy + g.crop_y];
            let (x0, wx) = &cx[ox + g.crop_x];
            for c in 0..3 {
                let mut s = 0.0f64;
                for (j, fy) in wy.iter().enumerate() {
                    for (i, fx) in wx.iter().enumerate() {
                        s += fy * fx * rgba[((y0 + j) * w + x0 + i) * 4 + c] as f64 / 255.0;
                    }
                }
                out[(c * p.crop_h + oy) * p.crop_w + ox] = ((s - p.mean[c] as f64) / p.std[c] as f64) as f32;
            }
        }
    }
    out
}

#[test]
fn preprocess_matches_cpu_resize_crop_normalise() {
    let cx = ctx();
    let mut rng = Rng::new(8);
    // Downscale landscape, downscale portrait to a non-square crop, upscale a tiny image.
    for (w, h, crop_h, crop_w) in [(451, 300, 224, 224), (37, 61, 20, 16), (10, 12, 32, 40), (640, 480, 97, 131)] {
        let rgba: Vec<u8> = (0..w * h * 4).map(|_| (rng.next_u64() >> 56) as u8).collect();
        let p = Preprocess::imagenet(crop_h, crop_w);
        let want = preprocess_cpu(&rgba, w, h, &p);
        let src = cx.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: rgba.len() as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        cx.gpu.queue.write_buffer(&src, 0, &rgba);
        let ob = cx.zeros(want.len());
        let d = cx.k.preprocess("pre", p.params(w, h).unwrap(), &src, &ob).unwrap();
        cx.run(&[&d]);
        assert_close(&format!("preprocess {w}×{h} → {crop_h}×{crop_w}"), &cx.read(&ob, want.len()), &want, 0.0, 1e-4);
    }
}

/// The backward kernels of a conv over a batch of 3 (and the batched
/// forward), against float64 loops: the input gradient (added to what dx
/// held), the weight gradient (K×M, in one pass and cut into slices of the
/// batch's pixels) and the bias gradient.
#[test]
fn conv_backward_kernels_match_cpu_on_awkward_shapes() {
    let cx = ctx();
    let mut cases = conv_cases();
    // Few output tiles and many pixels: the weight gradient is cut into slices.
    cases.push(ConvCase { cin: 3, h: 32, w: 30, cout: 5, k: 3, stride: 1, pad: 1, bias: true, residual: false, relu: false });
    let mut rng = Rng::new(21);
    let n = 3;
    for (case, c) in cases.iter().enumerate() {
        let (oh, ow) = c.out_size();
        let (il, ol) = (c.cin * c.h * c.w, c.cout * oh * ow);
        let x = rng.vec(n * il);
        let wt = rng.vec(c.cout * c.cin * c.k * c.k);
        let dy = rng.vec(n * ol);
        let dx0 = rng.vec(n * il);
        let kk = c.cin * c.k * c.k;
        let (mut dw, mut dx, mut db) = (vec![0.0f64; c.cout * kk], dx0.iter().map(|&v| v as f64).collect::<Vec<_>>(), vec![0.0f64; c.cout]);
        let mut fwd = Vec::new();
        for e in 0..n {
            fwd.extend(conv_cpu(&x[e * il..(e + 1) * il], &wt, None, None, &ConvCase { relu: false, ..*c }, oh, ow));
            for co in 0..c.cout {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let g = dy[e * ol + (co * oh + oy) * ow + ox] as f64;
                        db[co] += g;
                        for ci in 0..c.cin {
                            for ky in 0..c.k {
                                for kx in 0..c.k {
                                    let iy = (oy * c.stride + ky) as isize - c.pad as isize;
                                    let ix = (ox * c.stride + kx) as isize - c.pad as isize;
                                    if iy < 0 || ix < 0 || iy >= c.h as isize || ix >= c.w as isize {
                                        continue;
                                    }
                                    let xi = e * il + (ci * c.h + iy as usize) * c.w + ix as usize;
                                    let wi = ((co * c.cin + ci) * c.k + ky) * c.k + kx;
                                    dw[wi] += g * x[xi] as f64;
                                    dx[xi] += g * wt[wi] as f64;
                                }
                            }
                        }
                    }
                }
            }
        }
        let f32s = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
        let p = ConvParams { flags: 0, ..c.params() };
        let (xb, wb, dyb) = (cx.upload(&x), cx.upload(&conv_weights_km(&wt, c.cout)), cx.upload(&dy));
        let (yb, dxb, dwb, dbb) = (cx.zeros(n * ol), cx.upload(&dx0), cx.zeros(c.cout * kk), cx.zeros(c.cout));
        let slices = Kernels::weight_grad_slices(kk, c.cout, n * oh * ow);
        let scratch = cx.zeros(slices * kk * c.cout);
        let bufs = ConvBuffers { input: &xb, weight: &wb, bias: None, residual: None, output: &yb, main_out: None, fold: None, f32_input: false };
        let forward = cx.k.conv2d_batch("conv", n, p, &bufs).unwrap();
        let input = cx.k.conv2d_backward_input("dx", n, p, &dyb, &wb, &dxb).unwrap();
        let weight = cx.k.conv2d_backward_weight("dw", n, p, &xb, &dyb, &dwb, Some(&scratch)).unwrap();
        let bias = cx.k.channel_sums("db", n, c.cout, oh * ow, &dyb, &dbb).unwrap();
        cx.run(&[&forward, &input, &weight, &bias]);
        let what = format!("conv case {case}, batch {n}");
        assert_close(&format!("{what} forward"), &cx.read(&yb, n * ol), &fwd, 1e-5, 1e-5);
        assert_close(&format!("{what} dx"), &cx.read(&dxb, n * il), &f32s(&dx), 1e-5, 1e-5);
        assert_close(&format!("{what} dW ({slices} slices)"), &cx.read(&dwb, c.cout * kk), &conv_weights_km(&f32s(&dw), c.cout), 1e-5, 1e-5);
        assert_close(&format!("{what} db"), &cx.read(&dbb, c.cout), &f32s(&db), 1e-5, 1e-5);
        assert_eq!(conv_weights_oihw(&conv_weights_km(&wt, c.cout), c.cout), wt, "K×M back to OIHW");
    }
    assert!(Kernels::weight_grad_slices(27, 5, 3 * 32 * 30) > 1, "the last case runs the sliced path");
}

/// Max pooling's backward over a batch against the CPU backend's, with ties
/// (a ReLU's zeros): each window's gradient goes to its first maximum.
#[test]
fn maxpool_backward_matches_cpu_with_ties() {
    use resnet::engine::cpu::ops;
    use resnet::model::{PoolSpec, Shape};
    let cx = ctx();
    let mut rng = Rng::new(22);
    for (c, h, w, k, s, pad) in [(5, 11, 8, 3, 2, 1), (3, 9, 9, 3, 2, 0), (2, 7, 10, 2, 2, 0), (4, 1, 1, 3, 2, 1)] {
        let n = 2;
        let oh = (h + 2 * pad - k) / s + 1;
        let ow = (w + 2 * pad - k) / s + 1;
        let (i, o) = (Shape::new(c, h, w), Shape::new(c, oh, ow));
        let x: Vec<f32> = rng.vec(n * i.len()).iter().map(|v| v.max(0.0)).collect();
        let dy = rng.vec(n * o.len());
        let dx0 = rng.vec(n * i.len());
        let mut want = dx0.clone();
        let spec = PoolSpec { kernel: k, stride: s, padding: pad };
        for e in 0..n {
            ops::maxpool_backward(&x[e * i.len()..(e + 1) * i.len()], i, &spec, &dy[e * o.len()..(e + 1) * o.len()], o, &mut want[e * i.len()..(e + 1) * i.len()]);
        }
        let (xb, dyb, dxb) = (cx.upload(&x), cx.upload(&dy), cx.upload(&dx0));
        let p = PoolParams { channels: (n * c) as u32, in_h: h as u32, in_w: w as u32, out_h: oh as u32, out_w: ow as u32, kernel: k as u32, stride: s as u32, pad: pad as u32 };
        let d = cx.k.maxpool_backward("pool", p, &xb, &dyb, &dxb).unwrap();
        cx.run(&[&d]);
        assert_close(&format!("maxpool backward {c}×{h}×{w} k{k} s{s} p{pad}"), &cx.read(&dxb, want.len()), &want, 1e-6, 1e-6);
    }
}
