//! `resnet bench`: latency, throughput, recording cost, and GPU time per
//! stage and per layer, on a seeded input.

use std::time::Instant;

use resnet::{bail, ConvKernels, Engine, Error, Mode, Result};

use crate::io::Input;
use crate::{Bench, Engines};

/// Everything one bench run measured (milliseconds).
struct Figures {
    /// Upload to logits on the CPU, per timed run.
    wall: Vec<f64>,
    /// Upload, recording and submission on the CPU, per timed run.
    record: Vec<f64>,
    /// GPU time per run (sum of the stage passes), and per stage.
    gpu: Vec<f64>,
    stages: Vec<(String, Vec<f64>)>,
    /// Frames submitted back to back, per frame.
    per_frame: f64,
    dispatches: usize,
    /// Each op in its own timed pass (median of a few runs), plan order.
    layers: Vec<(String, f64)>,
}

pub async fn bench(b: Bench) -> Result<()> {
    if b.iters == 0 {
        bail!(BadInput, "--iters must be at least 1");
    }
    let mut engines = Engines::new(&b.common, b.stats).await?;
    let (h, w) = engines.image_size;
    // Before the input is sized from it.
    resnet::model::check_input_size(h, w)?;
    // A fixed pseudo-random input: the timing does not depend on the values.
    let data: Vec<f32> = (0..3 * h * w).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect();
    let input = Input::Tensor { h, w, data };
    let f = measure(&mut engines, &input, b.iters, b.layers > 0).await?;
    let engine = engines.get((h, w)).await?;
    let mut conv = match (engine.mode(), engine.conv_kernels()) {
        (_, None) => "GEMM on the CPU".to_string(),
        (Mode::Inspect, _) => "direct".to_string(),
        (Mode::Fast, Some(k)) => k.to_string(),
    };
    // The coop kernel falls back to its portable twin where the device has no
    // cooperative matrices: say which one was timed.
    if matches!(engine.conv_kernels(), Some(ConvKernels::Coop { .. })) && engine.mode() == Mode::Fast {
        let native = engine.gpu().is_some_and(|g| g.features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX));
        conv.push_str(if native { " (tensor cores)" } else { " (portable twin, no tensor cores)" });
    }
    // Kernel variants under test (see `RESNET_SHADER_DIR` in kernels/source.rs).
    if let Some(dir) = std::env::var_os("RESNET_SHADER_DIR").filter(|d| !d.is_empty()) {
        conv = format!("{conv} (shaders from {})", dir.to_string_lossy());
    }
    report(engine, &f, &conv, &b);
    if let Some(path) = &b.json {
        let json = to_json(engine, &f, &conv, b.iters);
        std::fs::write(path, format!("{json:#}\n")).map_err(|e| Error::new(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(())
}

/// Latency, recording and GPU times over `iters` frames; with `per_layer`,
/// also each op timed alone (a few extra frames).
async fn measure(engines: &mut Engines, input: &Input, iters: usize, per_layer: bool) -> Result<Figures> {
    let Input::Tensor { h, w, data } = input else { unreachable!("bench runs a tensor") };
    let mut f = Figures { wall: Vec::new(), record: Vec::new(), gpu: Vec::new(), stages: Vec::new(), per_frame: 0.0, dispatches: 0, layers: Vec::new() };
    for i in 0..iters + 2 {
        let t0 = Instant::now();
        let engine = engines.run(input).await?;
        let submitted = t0.elapsed().as_secs_f64() * 1e3;
        engine.output().await?;
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        if i < 2 {
            continue;
        }
        f.wall.push(ms);
        f.record.push(submitted);
        let st = engine.stage_times().unwrap_or_default();
        f.gpu.push(st.iter().map(|(_, t)| t).sum::<f64>());
        for (k, (name, t)) in st.iter().enumerate() {
            if f.stages.len() <= k {
                f.stages.push((name.clone(), Vec::new()));
            }
            f.stages[k].1.push(*t);
        }
    }
    // Throughput: frames submitted back to back, one readback at the end (a
    // video loop that keeps the GPU fed), per frame.
    let engine = engines.get((*h, *w)).await?;
    f.dispatches = engine.dispatches_per_frame();
    let t0 = Instant::now();
    // The CPU backend computes a frame when its results are read, and a new
    // submission replaces one not yet read: there, each frame is read.
    let on_cpu = engine.gpu().is_none();
    for _ in 0..iters {
        engine.run_tensor(data)?;
        if on_cpu {
            engine.output().await?;
        }
    }
    engine.output().await?;
    f.per_frame = t0.elapsed().as_secs_f64() * 1e3 / iters as f64;
    if per_layer && engine.gpu().is_none_or(|g| g.features.contains(wgpu::Features::TIMESTAMP_QUERY)) {
        // Median over a few profiled frames per layer.
        let mut runs = Vec::new();
        for _ in 0..iters.clamp(1, 5) {
            runs.push(engine.profile_layers().await?);
        }
        f.layers = (0..runs[0].len()).map(|i| (runs[0][i].0.clone(), median(runs.iter().map(|r| r[i].1).collect()))).collect();
    }
    Ok(f)
}

fn report(engine: &Engine, f: &Figures, conv: &str, b: &Bench) {
    let (h, w) = engine.input_size();
    println!(
        "{} · {h}×{w} · {} mode, {}{} · conv {conv}{} · {} · {} runs",
        engine.model().description,
        engine.mode(),
        engine.precision(),
        if engine.config().stats { ", per-block statistics" } else { "" },
        engine.submit_mode().map(|s| format!(" · submitted per {s}")).unwrap_or_default(),
        engine.device_name(),
        b.iters
    );
    let (lo, hi) = (f.wall.iter().cloned().fold(f64::MAX, f64::min), f.wall.iter().cloned().fold(0.0, f64::max));
    println!("latency (upload → logits on the CPU): median {:.3} ms, min {lo:.3}, max {hi:.3}", median(f.wall.clone()));
    println!("throughput (frames back to back): {:.3} ms per frame", f.per_frame);
    println!("CPU: upload + recording + submit, median {:.3} ms; {} compute dispatches per frame", median(f.record.clone()), f.dispatches);
    let clock = if engine.gpu().is_some() { "GPU" } else { "CPU" };
    if f.stages.is_empty() {
        println!("no GPU timestamps on this adapter");
    } else {
        println!("{clock} time per frame (sum of stages): median {:.3} ms", median(f.gpu.clone()));
    }
    for (name, t) in &f.stages {
        println!("  {name:<8} {:>10.3} ms ({clock}, median)", median(t.clone()));
    }
    if !f.layers.is_empty() {
        let total: f64 = f.layers.iter().map(|(_, t)| t).sum();
        println!("per layer, each timed alone: {} ops, {total:.3} ms in all; the {} slowest:", f.layers.len(), b.layers.min(f.layers.len()));
        let mut slow = f.layers.clone();
        slow.sort_by(|a, b| b.1.total_cmp(&a.1));
        for (name, t) in slow.iter().take(b.layers) {
            println!("  {t:>9.3} ms  {:>5.1}%  {name}", 100.0 * t / total);
        }
    }
}

fn to_json(engine: &Engine, f: &Figures, conv: &str, iters: usize) -> serde_json::Value {
    let (h, w) = engine.input_size();
    serde_json::json!({
        "model": engine.model().description,
        "mode": engine.mode().as_str(),
        "conv": conv,
        "precision": engine.precision().as_str(),
        "adapter": engine.device_name(),
        "backend": engine.backend().as_str(),
        "input_size": [h, w],
        "iters": iters,
        "stats": engine.config().stats,
        "submit": engine.submit_mode().map(|s| s.as_str()),
        "wall_ms": f.wall,
        "wall_median_ms": median(f.wall.clone()),
        "throughput_ms_per_frame": f.per_frame,
        "record_submit_ms": median(f.record.clone()),
        "dispatches_per_frame": f.dispatches,
        "gpu_frame_ms": f.gpu,
        "stages": f.stages.iter().map(|(n, t)| serde_json::json!({"name": n, "median_ms": median(t.clone())})).collect::<Vec<_>>(),
        "layers": f.layers.iter().map(|(n, t)| serde_json::json!({"name": n, "ms": t})).collect::<Vec<_>>(),
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
