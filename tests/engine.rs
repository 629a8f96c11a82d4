//! Engine features the page relies on: per-frame statistics (channel means,
//! ‖F(x)‖ against ‖x‖), skipping identity blocks, partial reads, class
//! activation maps and per-stage timings, checked against plain math on
//! tensors read back in full — on both backends (the GPU through lavapipe,
//! and the CPU) — and the two backends computing the same network.

mod common;

use std::rc::Rc;

use common::{assert_close, Rng};
use resnet::demo::{weights, DemoSpec};
use resnet::{BlockRole, ConvKernels, Device, Engine, EngineConfig, ErrorKind, Gpu, Mode, Precision, Submit, Weights};

fn small_spec() -> DemoSpec {
    DemoSpec { seed: 5, stem: 8, stages: vec![(8, 2), (12, 2), (16, 2), (20, 2)], classes: 17 }
}

/// The GPU (lavapipe here) and the CPU backend.
fn devices() -> [Device; 2] {
    [Device::Gpu(Rc::new(pollster::block_on(Gpu::new()).unwrap())), Device::Cpu]
}

fn engine_on(device: &Device, mode: Mode, h: usize, w: usize) -> Engine {
    let w8 = Weights::from_safetensors(&weights(&small_spec())).unwrap();
    pollster::block_on(Engine::new(device, &w8, EngineConfig::mode(mode), h, w)).unwrap()
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| (*x as f64) * (*x as f64)).sum::<f64>().sqrt() as f32
}

#[test]
fn stats_match_the_tensors_they_summarise() {
    for device in devices() {
        stats_match_on(&device);
    }
}

fn stats_match_on(device: &Device) {
    let mut fx_by_mode = Vec::new();
    for mode in [Mode::Inspect, Mode::Fast] {
        let mut e = engine_on(device, mode, 41, 53);
        fx_by_mode.extend(check_stats(&mut e, 1e-4));
    }
    // Both modes measure the same ‖F(x)‖.
    let (inspect, fast) = fx_by_mode.split_at(8);
    for ((n, a), (_, b)) in inspect.iter().zip(fast) {
        assert!((a - b).abs() <= 1e-4 * a.abs().max(1.0), "{n}: inspect {a} vs fast {b}");
    }
}

/// The f16 path's statistics (read from f16 tensors) against those tensors.
#[test]
fn f16_stats_match_the_tensors_they_summarise() {
    let gpu = Rc::new(pollster::block_on(Gpu::new()).unwrap());
    if !gpu.features.contains(wgpu::Features::SHADER_F16) {
        return; // lavapipe has shader-f16
    }
    let w8 = Weights::from_safetensors(&weights(&small_spec())).unwrap();
    let config = EngineConfig { precision: Precision::F16, ..EngineConfig::mode(Mode::Fast) };
    let mut e = pollster::block_on(Engine::new(&Device::Gpu(gpu), &w8, config, 41, 53)).unwrap();
    check_stats(&mut e, 1e-3);
}

/// Runs a frame and checks its statistics against the tensors they
/// summarise (within `tol`); returns each residual block's ‖F(x)‖.
fn check_stats(e: &mut Engine, tol: f32) -> Vec<(String, f32)> {
    let mut fx_norms = Vec::new();
    let (h, w) = e.input_size();
    e.run_tensor(&Rng::new(1).vec(3 * h * w)).unwrap();
    pollster::block_on(e.output()).unwrap();
    let stats = e.block_stats().clone();
    let blocks = e.blocks().to_vec();
    assert_eq!(stats.channel_means.len(), blocks.len());
    for (i, b) in blocks.iter().enumerate() {
        let (s, data) = pollster::block_on(e.read(&b.name)).unwrap();
        if b.role == BlockRole::Head {
            assert_eq!(stats.channel_means[i], data, "the head's means are the pooled vector");
            continue;
        }
        let plane = s.h * s.w;
        let means: Vec<f32> = (0..s.c).map(|c| data[c * plane..(c + 1) * plane].iter().sum::<f32>() / plane as f32).collect();
        assert_close(&format!("{} means", b.name), &stats.channel_means[i], &means, tol, 1e-6);
        if let Some((fx, x)) = stats.norms[i] {
            let sc = pollster::block_on(e.read(&format!("{}.shortcut", b.name))).unwrap().1;
            assert_close("‖x‖", &[x], &[norm(&sc)], tol, 0.0);
            let main = pollster::block_on(e.read(&format!("{}.main", b.name))).unwrap().1;
            assert_close("‖F(x)‖", &[fx], &[norm(&main)], tol, 0.0);
            // F(x) + x, through the ReLU, is the block's output.
            let y: Vec<f32> = main.iter().zip(&sc).map(|(f, x)| (f + x).max(0.0)).collect();
            // (f16: the output and F(x) are each rounded once more.)
            let relu_tol = if tol > 1e-4 { 2e-3 } else { 1e-5 };
            assert_close(&format!("{} = relu(F(x) + x)", b.name), &data, &y, relu_tol, 1e-5);
            fx_norms.push((b.name.clone(), fx));
        }
    }
    assert_eq!(stats.norms.iter().filter(|n| n.is_some()).count(), 8);
    fx_norms
}

#[test]
fn a_skipped_identity_block_passes_its_input_through() {
    for (device, mode) in devices().into_iter().flat_map(|d| [(d.clone(), Mode::Fast), (d, Mode::Inspect)]) {
        let mut e = engine_on(&device, mode, 64, 64);
        let x = Rng::new(2).vec(3 * 64 * 64);
        e.run_tensor(&x).unwrap();
        let before = pollster::block_on(e.output()).unwrap().clone();
        assert!(e.set_block_enabled("layer2.0", false).unwrap_err().to_string().contains("convolutional"));
        assert!(e.set_block_enabled("nope", false).is_err());
        let block = e.blocks().iter().position(|b| b.name == "layer3.1").unwrap();
        let main_before = e.block_stats().norms[block].unwrap().0;
        assert!(main_before > 0.0 && !e.block_stats().skipped[block]);
        e.set_block_enabled("layer3.1", false).unwrap();
        e.run_tensor(&x).unwrap();
        // Switched back on before the frame is read: the results still
        // describe the frame as it was submitted.
        e.set_block_enabled("layer3.1", true).unwrap();
        let after = pollster::block_on(e.output()).unwrap().clone();
        // The main path did not run: its norm is 0, not the last frame's.
        let (main, shortcut) = e.block_stats().norms[block].unwrap();
        assert!(e.block_stats().skipped[block] && main == 0.0 && shortcut > 0.0, "{mode:?}: {main} {shortcut}");
        assert_eq!(e.block_stats().skipped.iter().filter(|&&s| s).count(), 1);
        // Its inner tensors (F(x) in fast mode, every step in inspect mode)
        // were not computed in that frame: reading them is refused.
        let plan = e.plan().clone();
        let b = &plan.blocks[block];
        let inner: Vec<String> = plan.ops[b.ops.clone()].iter().flat_map(|op| op.outputs()).filter(|&t| t != b.tensor && plan.tensors[t].keep).map(|t| plan.tensors[t].name.clone()).collect();
        assert!(!inner.is_empty(), "{mode:?}");
        for name in &inner {
            let err = pollster::block_on(e.read(name)).unwrap_err().to_string();
            assert!(err.contains("skipped"), "{mode:?} {name}: {err}");
        }
        let input = pollster::block_on(e.read("layer3.0")).unwrap().1;
        let output = pollster::block_on(e.read("layer3.1")).unwrap().1;
        assert_eq!(input, output, "{mode:?}");
        let diff = before.logits.iter().zip(&after.logits).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(diff > 1e-3, "skipping a block changed nothing ({diff})");
        e.run_tensor(&x).unwrap();
        let again = pollster::block_on(e.output()).unwrap().clone();
        assert_eq!(before.logits, again.logits);
        assert_eq!(e.block_stats().norms[block].unwrap().0, main_before);
        assert!(!e.block_stats().skipped[block]);
        for name in &inner {
            pollster::block_on(e.read(name)).unwrap();
        }
    }
}

#[test]
fn the_cpu_backend_refuses_sizes_beyond_its_memory_budget() {
    // A wide stem: at 4096×4096 its activations alone pass 8 GiB.
    let spec = DemoSpec { seed: 5, stem: 256, stages: vec![(256, 1), (256, 1), (256, 1), (256, 1)], classes: 3 };
    let w = Weights::from_safetensors(&weights(&spec)).unwrap();
    let err = pollster::block_on(Engine::new(&Device::Cpu, &w, EngineConfig::mode(Mode::Fast), 4096, 4096)).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::InputTooLarge, "{err}");
    assert!(err.to_string().contains("too large for the CPU backend"), "{err}");
    // A re-plan that fails keeps the engine as it was.
    let mut e = pollster::block_on(Engine::new(&Device::Cpu, &w, EngineConfig::mode(Mode::Fast), 40, 40)).unwrap();
    assert_eq!(pollster::block_on(e.set_input_size(4096, 4096)).unwrap_err().kind(), ErrorKind::InputTooLarge);
    assert_eq!(e.input_size(), (40, 40));
    e.run_tensor(&Rng::new(1).vec(3 * 40 * 40)).unwrap();
    assert_eq!(pollster::block_on(e.output()).unwrap().logits.len(), 3);
}

#[test]
fn output_without_a_new_frame() {
    for device in devices() {
        let mut e = engine_on(&device, Mode::Fast, 64, 64);
        // Nothing run yet: no results, not zeros.
        let err = pollster::block_on(e.output()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NoFrame, "{err}");
        assert!(pollster::block_on(e.read("stem")).is_err());
        e.run_tensor(&Rng::new(5).vec(3 * 64 * 64)).unwrap();
        let first = pollster::block_on(e.output()).unwrap().clone();
        // Asked again: the same frame's results, and its tensors stay readable.
        let again = pollster::block_on(e.output()).unwrap().clone();
        assert_eq!(first.logits, again.logits);
        pollster::block_on(e.read("stem")).unwrap();
        // A frame submitted, then a re-plan: that frame is gone.
        e.run_tensor(&Rng::new(6).vec(3 * 64 * 64)).unwrap();
        pollster::block_on(e.set_input_size(48, 56)).unwrap();
        assert_eq!(pollster::block_on(e.output()).unwrap_err().kind(), ErrorKind::NoFrame);
        e.run_tensor(&Rng::new(6).vec(3 * 48 * 56)).unwrap();
        assert_eq!(pollster::block_on(e.output()).unwrap().logits.len(), first.logits.len());
        // A read right after a submission sees that frame on both backends
        // (the CPU computes it then), and skips follow it.
        let x = Rng::new(7).vec(3 * 48 * 56);
        e.set_block_enabled("layer3.1", false).unwrap();
        e.run_tensor(&x).unwrap();
        let err = pollster::block_on(e.read("layer3.1.main")).unwrap_err().to_string();
        assert!(err.contains("skipped"), "{err}");
        let skipped_out = pollster::block_on(e.read("layer3.1")).unwrap().1;
        assert_eq!(skipped_out, pollster::block_on(e.read("layer3.0")).unwrap().1);
        e.set_block_enabled("layer3.1", true).unwrap();
        e.run_tensor(&x).unwrap();
        let main = pollster::block_on(e.read("layer3.1.main")).unwrap().1;
        assert!(main.iter().any(|&v| v != 0.0));
        assert_ne!(pollster::block_on(e.read("layer3.1")).unwrap().1, skipped_out);
        // Profiling reruns the ops into the frame's buffers: that frame is gone.
        assert!(!pollster::block_on(e.profile_layers()).unwrap().is_empty());
        assert_eq!(pollster::block_on(e.output()).unwrap_err().kind(), ErrorKind::NoFrame);
        assert_eq!(pollster::block_on(e.read("layer3.1")).unwrap_err().kind(), ErrorKind::NoFrame);
    }
}

/// Once the device is lost, every later call says so (an app that retries
/// on other errors must not retry forever), a re-plan included.
#[test]
fn a_lost_device_stays_reported() {
    let gpu = Rc::new(pollster::block_on(Gpu::new()).unwrap());
    let mut e = engine_on(&Device::Gpu(gpu.clone()), Mode::Fast, 64, 64);
    let x = Rng::new(5).vec(3 * 64 * 64);
    e.run_tensor(&x).unwrap();
    pollster::block_on(e.output()).unwrap();
    gpu.device.destroy();
    for _ in 0..2 {
        let frame = e.run_tensor(&x).and_then(|_| pollster::block_on(e.output()).map(|_| ()));
        assert_eq!(frame.unwrap_err().kind(), ErrorKind::DeviceLost);
    }
    assert_eq!(pollster::block_on(e.set_input_size(48, 48)).unwrap_err().kind(), ErrorKind::DeviceLost);
}

#[test]
fn a_frame_submitted_stage_by_stage_computes_the_same() {
    let w = Weights::from_safetensors(&weights(&small_spec())).unwrap();
    let gpu = Device::Gpu(Rc::new(pollster::block_on(Gpu::new()).unwrap()));
    let x = Rng::new(8).vec(3 * 61 * 47);
    let run = |submit: Option<Submit>, mode: Mode| {
        let config = EngineConfig { submit, ..EngineConfig::mode(mode) };
        let mut e = pollster::block_on(Engine::new(&gpu, &w, config, 61, 47)).unwrap();
        e.set_block_enabled("layer3.1", false).unwrap();
        e.run_tensor(&x).unwrap();
        let out = pollster::block_on(e.output()).unwrap().clone();
        let stages = e.stage_times().map(|s| s.len());
        (e.submit_mode(), out.logits, out.probs, e.block_stats().clone(), stages)
    };
    for mode in [Mode::Fast, Mode::Inspect] {
        let (m1, l1, p1, s1, t1) = run(Some(Submit::Frame), mode);
        let (m2, l2, p2, s2, t2) = run(Some(Submit::Stage), mode);
        assert_eq!((m1, m2), (Some(Submit::Frame), Some(Submit::Stage)));
        assert_eq!((l1, p1), (l2, p2), "{mode:?}");
        assert_eq!((s1.channel_means, s1.norms, s1.skipped), (s2.channel_means, s2.norms, s2.skipped), "{mode:?}");
        // Every stage timed, across the command buffers.
        assert_eq!((t1, t2), (Some(6), Some(6)));
    }
    // The adapter's default (lavapipe is a CPU adapter, where a submission
    // waits for the one before: one command buffer per frame).
    let adapter = match &gpu {
        Device::Gpu(g) => g.adapter_info.clone(),
        Device::Cpu => unreachable!(),
    };
    assert_eq!(run(None, Mode::Fast).0, Some(Submit::for_adapter(&adapter)));
}

#[test]
fn partial_reads_cams_and_stage_timings() {
    for device in devices() {
        partial_reads_cams_and_stage_timings_on(&device);
    }
}

fn partial_reads_cams_and_stage_timings_on(device: &Device) {
    let mut e = engine_on(device, Mode::Fast, 96, 80);
    e.run_tensor(&Rng::new(3).vec(3 * 96 * 80)).unwrap();
    let out = pollster::block_on(e.output()).unwrap().clone();
    let (s, full) = pollster::block_on(e.read("layer1.1")).unwrap();
    let (s2, part) = pollster::block_on(e.read_channels("layer1.1", &[5, 0, 7])).unwrap();
    let plane = s.h * s.w;
    assert_eq!((s2.c, s2.h, s2.w), (3, s.h, s.w));
    assert_eq!(&part[..plane], &full[5 * plane..6 * plane]);
    assert_eq!(&part[2 * plane..], &full[7 * plane..8 * plane]);
    assert!(pollster::block_on(e.read_channels("layer1.1", &[8])).is_err());
    // Repeats are fine, but not more reads than the tensor has channels (a
    // long list would allocate without bound).
    assert_eq!(pollster::block_on(e.read_channels("layer1.1", &[1; 8])).unwrap().0.c, 8);
    let err = pollster::block_on(e.read_channels("layer1.1", &vec![0; 100_000])).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadInput, "{err}");

    let top = out.top(1)[0].0;
    let (h, w, cam) = pollster::block_on(e.class_activation_map(top)).unwrap();
    let (fs, feat) = pollster::block_on(e.read("layer4.1")).unwrap();
    assert_eq!((h, w), (fs.h, fs.w));
    // The CAM's mean is the class logit minus its bias (the dense layer is linear).
    let mean = cam.iter().sum::<f32>() / cam.len() as f32;
    assert_eq!(feat.len(), fs.c * h * w);
    let bias_free = out.logits[top] - bias_of(top);
    assert!((mean - bias_free).abs() < 1e-3 * bias_free.abs().max(1.0), "{mean} vs {bias_free}");

    let stages = e.stage_times().expect("lavapipe has timestamp queries, the CPU a clock").to_vec();
    let names: Vec<&str> = stages.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["stem", "stage1", "stage2", "stage3", "stage4", "head"]);
    assert!(stages.iter().all(|(_, ms)| *ms >= 0.0) && stages.iter().map(|s| s.1).sum::<f64>() > 0.0);
}

fn bias_of(class: usize) -> f32 {
    Weights::from_safetensors(&weights(&small_spec())).unwrap().dense.bias[class]
}

#[test]
fn every_conv_kernel_choice_computes_the_same_network() {
    // Wide enough for the tiled GEMM (64+ channels), odd sizes, and K split
    // into slices as short as 16 so every layer takes the split-K path with
    // its shared partial-sum buffer.
    let spec = DemoSpec { seed: 9, stem: 16, stages: vec![(64, 1), (72, 2), (96, 1), (130, 2)], classes: 11 };
    let w = Weights::from_safetensors(&weights(&spec)).unwrap();
    let gpu = Device::Gpu(Rc::new(pollster::block_on(Gpu::new()).unwrap()));
    let x = Rng::new(4).vec(3 * 45 * 51);
    let mut names: Vec<String> = Vec::new();
    let mut runs = Vec::new();
    // The GPU's kernels, then the CPU backend (GEMM), in both modes.
    let mut dispatches = std::collections::HashMap::new();
    // `:8:16`: a target low enough for this small network that some layers
    // run 32×32 tiles instead of splitting K (`+small`).
    let convs = ["direct", "gemm", "splitk:256:16", "splitk:100000:16", "splitk+fold:256:16", "splitk+fold16:256:16", "splitk:8:16", "splitk+small:8:16", "splitk+fold+small:8:16", "cpu fast", "cpu inspect"];
    for conv in convs {
        let (device, config) = match conv {
            "cpu fast" => (&Device::Cpu, EngineConfig::mode(Mode::Fast)),
            "cpu inspect" => (&Device::Cpu, EngineConfig::mode(Mode::Inspect)),
            _ => (&gpu, EngineConfig { conv: Some(conv.parse().unwrap()), ..EngineConfig::mode(Mode::Fast) }),
        };
        let mut e = pollster::block_on(Engine::new(device, &w, config, 45, 51)).unwrap();
        dispatches.insert(conv, e.dispatches_per_frame());
        names = e.blocks().iter().filter(|b| b.role != BlockRole::Head).map(|b| b.name.clone()).collect();
        e.run_tensor(&x).unwrap();
        let logits = pollster::block_on(e.output()).unwrap().logits.clone();
        let blocks: Vec<Vec<f32>> = names.iter().map(|n| pollster::block_on(e.read(n)).unwrap().1).collect();
        runs.push((conv, logits, blocks));
    }
    // Folding a reduction into the next conv's loads sums in the same order:
    // the same bits, fewer dispatches (here 3 of the 7 split convs are a
    // block's first conv, read only by its second).
    let (split, fold) = (&runs[2], &runs[4]);
    assert_eq!((split.1.clone(), split.2.clone()), (fold.1.clone(), fold.2.clone()), "splitk+fold differs from splitk");
    assert_eq!(dispatches["splitk+fold:256:16"], dispatches["splitk:256:16"] - 3, "{dispatches:?}");
    // `+fold16`: only splits of at most 16 slices fold (one of the three here).
    let fold16 = &runs[5];
    assert_eq!((split.1.clone(), split.2.clone()), (fold16.1.clone(), fold16.2.clone()), "splitk+fold16 differs from splitk");
    assert_eq!(dispatches["splitk+fold16:256:16"], dispatches["splitk:256:16"] - 1, "{dispatches:?}");
    // 32×32 tiles instead of split K: fewer reductions.
    assert!(dispatches["splitk+small:8:16"] < dispatches["splitk:8:16"], "{dispatches:?}");
    assert!(dispatches["splitk+fold+small:8:16"] <= dispatches["splitk+small:8:16"], "{dispatches:?}");
    let (_, ref_logits, ref_blocks) = &runs[0];
    for (conv, logits, blocks) in &runs[1..] {
        assert_close(&format!("{conv} logits"), logits, ref_logits, 1e-4, 1e-5);
        for ((n, b), r) in names.iter().zip(blocks).zip(ref_blocks) {
            assert_close(&format!("{conv} {n}"), b, r, 1e-4, 1e-5);
        }
    }
}

#[test]
fn statistics_can_be_switched_off_without_changing_the_output() {
    for device in devices() {
        statistics_off_on(&device);
    }
}

fn statistics_off_on(device: &Device) {
    let mut e = engine_on(device, Mode::Fast, 48, 40);
    let x = Rng::new(6).vec(3 * 48 * 40);
    e.run_tensor(&x).unwrap();
    let with = pollster::block_on(e.output()).unwrap().clone();
    assert!(e.block_stats().channel_means.iter().all(|m| !m.is_empty()));
    let w8 = Weights::from_safetensors(&weights(&small_spec())).unwrap();
    let mut e = pollster::block_on(Engine::new(device, &w8, EngineConfig { stats: false, ..EngineConfig::mode(Mode::Fast) }, 48, 40)).unwrap();
    e.run_tensor(&x).unwrap();
    let without = pollster::block_on(e.output()).unwrap().clone();
    assert_eq!(with.logits, without.logits);
    assert!(e.block_stats().channel_means.iter().all(|m| m.is_empty()));
    assert!(e.block_stats().norms.iter().all(|n| n.is_none()));
    if let Device::Gpu(_) = device {
        assert!(e.dispatches_per_frame() < engine_on(device, Mode::Fast, 48, 40).dispatches_per_frame(), "statistics off: fewer dispatches");
    }
}

#[test]
fn f16_storage_tracks_f32_and_reads_back_odd_planes() {
    // A 15×15 map makes f16 channel planes an odd number of bytes long:
    // partial reads must still return exactly the requested values.
    let spec = DemoSpec { seed: 3, stem: 16, stages: vec![(64, 1), (72, 2), (96, 1), (130, 2)], classes: 11 };
    let w = Weights::from_safetensors(&weights(&spec)).unwrap();
    let f16 = EngineConfig { precision: Precision::F16, ..Default::default() };
    let cpu = pollster::block_on(Engine::new(&Device::Cpu, &w, f16, 57, 57)).err().unwrap();
    assert!(cpu.to_string().contains("f32 only"), "the CPU backend refuses f16: {cpu}");
    let gpu = Rc::new(pollster::block_on(Gpu::new()).unwrap());
    if !gpu.features.contains(wgpu::Features::SHADER_F16) {
        let e = pollster::block_on(Engine::new(&Device::Gpu(gpu), &w, f16, 57, 57)).err().unwrap();
        assert!(e.to_string().contains("shader-f16"), "{e}");
        return;
    }
    let gpu = Device::Gpu(gpu);
    assert!(pollster::block_on(Engine::new(&gpu, &w, EngineConfig { precision: Precision::F16, ..EngineConfig::mode(Mode::Inspect) }, 57, 57)).is_err());
    // A weight beyond f16's ±65504 would turn to infinity: refused in f16, fine in f32.
    let mut big = resnet::demo::tensors(&spec);
    let t = big.iter_mut().find(|t| t.0 == "layer2.0.conv1.weight").unwrap();
    t.3[..4].copy_from_slice(&1e5f32.to_le_bytes());
    let big = Weights::from_safetensors(&resnet::demo::serialize(&big)).unwrap();
    let e = pollster::block_on(Engine::new(&gpu, &big, f16, 57, 57)).err().unwrap();
    assert!(e.to_string().contains("conv `layer2.0.conv1` has weights up to") && e.to_string().contains("use precision f32"), "{e}");
    pollster::block_on(Engine::new(&gpu, &big, EngineConfig::default(), 57, 57)).unwrap();
    let x = Rng::new(8).vec(3 * 57 * 57);
    let mut results = Vec::new();
    let coop = "coop:256:16".parse::<ConvKernels>().unwrap();
    let e = pollster::block_on(Engine::new(&gpu, &w, EngineConfig { conv: Some(coop), ..Default::default() }, 57, 57)).err().unwrap();
    assert!(e.to_string().contains("f16"), "the tensor-core kernel needs f16 storage: {e}");
    // The coop kernel runs its portable twin here (lavapipe has no
    // cooperative matrices): same tiling and split-K, plain WGSL.
    for (precision, conv) in [(Precision::F32, "splitk:256:16"), (Precision::F16, "splitk:256:16"), (Precision::F16, "coop:256:16"), (Precision::F16, "coop+fold:256:16")] {
        let config = EngineConfig { precision, conv: Some(conv.parse::<ConvKernels>().unwrap()), ..Default::default() };
        let mut e = pollster::block_on(Engine::new(&gpu, &w, config, 57, 57)).unwrap();
        e.run_tensor(&x).unwrap();
        let logits = pollster::block_on(e.output()).unwrap().logits.clone();
        let (s, full) = pollster::block_on(e.read("layer1.0")).unwrap();
        let plane = s.h * s.w;
        assert_eq!(plane % 2, 1, "the test wants an odd plane, got {}×{}", s.h, s.w);
        let (_, part) = pollster::block_on(e.read_channels("layer1.0", &[3, 0, 63])).unwrap();
        assert_eq!(&part[..plane], &full[3 * plane..4 * plane]);
        assert_eq!(&part[plane..2 * plane], &full[..plane]);
        assert_eq!(&part[2 * plane..], &full[63 * plane..64 * plane]);
        results.push((logits, full));
    }
    // f16 keeps 11 significant bits per stored value.
    assert_close("f16 logits", &results[1].0, &results[0].0, 1e-2, 1e-3);
    assert_close("f16 layer1.0", &results[1].1, &results[0].1, 1e-2, 1e-3);
    assert_close("f16 coop logits", &results[2].0, &results[0].0, 1e-2, 1e-3);
    assert_close("f16 coop layer1.0", &results[2].1, &results[0].1, 1e-2, 1e-3);
    assert_close("f16 coop+fold logits", &results[3].0, &results[0].0, 1e-2, 1e-3);
    assert_close("f16 coop+fold layer1.0", &results[3].1, &results[0].1, 1e-2, 1e-3);
}
