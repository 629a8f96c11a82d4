//! `resnet bench`: latency, throughput, recording cost, and GPU time per
//! stage and per layer, on a seeded input.

use std::time::Instant;

use resnet::{bail, Error, Mode, Result};

use crate::io::Input;
use crate::{Bench, Engines};

pub async fn bench(b: Bench) -> Result<()> {
    if b.iters == 0 {
        bail!("--iters must be at least 1");
    }
    let mut engines = Engines::new(&b.common).await?;
    let (h, w) = engines.image_size;
    // A fixed pseudo-random input: the timing does not depend on the values.
    let data: Vec<f32> = (0..3 * h * w).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect();
    let input = Input::Tensor { h, w, data };
    let mut wall = Vec::new();
    let mut gpu = Vec::new();
    let mut record = Vec::new();
    let mut stages: Vec<(String, Vec<f64>)> = Vec::new();
    for i in 0..b.iters + 2 {
        let t0 = Instant::now();
        let engine = engines.run(&input).await?;
        let submitted = t0.elapsed().as_secs_f64() * 1e3;
        engine.output().await?;
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        if i < 2 {
            continue;
        }
        wall.push(ms);
        record.push(submitted);
        let st = engine.stage_times().map(<[_]>::to_vec).unwrap_or_default();
        gpu.push(st.iter().map(|(_, t)| t).sum::<f64>());
        for (k, (name, t)) in st.into_iter().enumerate() {
            if stages.len() <= k {
                stages.push((name, Vec::new()));
            }
            stages[k].1.push(t);
        }
    }
    // Throughput: frames submitted back to back, one readback at the end (a
    // video loop that keeps the GPU fed), per frame.
    let Input::Tensor { data, .. } = &input else { unreachable!() };
    let engine = engines.get((h, w)).await?;
    let dispatches = engine.dispatches_per_frame();
    let t0 = Instant::now();
    for _ in 0..b.iters {
        engine.run_tensor(data)?;
    }
    engine.output().await?;
    let per_frame = t0.elapsed().as_secs_f64() * 1e3 / b.iters as f64;

    let mut layers = if engine.gpu().features.contains(wgpu::Features::TIMESTAMP_QUERY) {
        // Median over a few profiled frames per layer.
        let mut runs = Vec::new();
        for _ in 0..b.iters.clamp(1, 5) {
            runs.push(engine.profile_layers().await?);
        }
        (0..runs[0].len())
            .map(|i| {
                let mut t: Vec<f64> = runs.iter().map(|r| r[i].1).collect();
                (runs[0][i].0.clone(), median(&mut t))
            })
            .collect()
    } else {
        Vec::new()
    };

    let mut conv = match engine.mode() {
        Mode::Inspect => "direct".to_string(),
        Mode::Fast => engine.conv_kernels().to_string(),
    };
    // Kernel variants under test (see `RESNET_SHADER_DIR` in kernels.rs).
    if let Some(dir) = std::env::var_os("RESNET_SHADER_DIR").filter(|d| !d.is_empty()) {
        conv = format!("{conv} (shaders from {})", dir.to_string_lossy());
    }
    println!(
        "{} · {h}×{w} · {} mode, {} · conv {conv} · {} · {} runs",
        engine.model().description,
        engine.mode().as_str(),
        engine.precision().as_str(),
        engine.gpu().adapter_name(),
        b.iters
    );
    let (lo, hi) = (wall.iter().cloned().fold(f64::MAX, f64::min), wall.iter().cloned().fold(0.0, f64::max));
    let wall_median = median(&mut wall.clone());
    println!("latency (upload → logits on the CPU): median {wall_median:.3} ms, min {lo:.3}, max {hi:.3}");
    println!("throughput (frames back to back): {per_frame:.3} ms per frame");
    let record_median = median(&mut record.clone());
    println!("CPU: upload + recording + submit, median {record_median:.3} ms; {dispatches} compute dispatches per frame");
    if stages.is_empty() {
        println!("no GPU timestamps on this adapter");
    } else {
        println!("GPU time per frame (sum of stage passes): median {:.3} ms", median(&mut gpu.clone()));
    }
    for (name, t) in &stages {
        println!("  {name:<8} {:>10.3} ms (GPU, median)", median(&mut t.clone()));
    }
    if !layers.is_empty() {
        let total: f64 = layers.iter().map(|(_, t)| t).sum();
        println!("per layer, each in its own timed pass: {} ops, {total:.3} ms in all; the {} slowest:", layers.len(), b.layers.min(layers.len()));
        let mut slow = layers.clone();
        slow.sort_by(|a, b| b.1.total_cmp(&a.1));
        for (name, t) in slow.iter().take(b.layers) {
            println!("  {t:>9.3} ms  {:>5.1}%  {name}", 100.0 * t / total);
        }
    }
    if let Some(path) = &b.json {
        let json = serde_json::json!({
            "model": engine.model().description,
            "mode": engine.mode().as_str(),
            "conv": conv,
            "precision": engine.precision().as_str(),
            "adapter": engine.gpu().adapter_name(),
            "input_size": [h, w],
            "iters": b.iters,
            "wall_ms": wall,
            "wall_median_ms": wall_median,
            "throughput_ms_per_frame": per_frame,
            "record_submit_ms": record_median,
            "dispatches_per_frame": dispatches,
            "gpu_frame_ms": gpu,
            "stages": stages.iter().map(|(n, t)| serde_json::json!({"name": n, "median_ms": median(&mut t.clone())})).collect::<Vec<_>>(),
            "layers": layers.drain(..).map(|(n, t)| serde_json::json!({"name": n, "ms": t})).collect::<Vec<_>>(),
        });
        std::fs::write(path, format!("{json:#}\n")).map_err(|e| Error::new(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
