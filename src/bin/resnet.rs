//! `resnet`: the native command line. Classifies images or raw tensors and
//! dumps every block's output, on whatever GPU wgpu finds (Vulkan here).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use npyz::WriterBuilder;
use resnet::{bail, ConvKernels, Engine, Error, Gpu, Mode, Precision, Preprocess, Result, Weights};

#[derive(Parser)]
#[command(name = "resnet", version, about = "ResNet inference on WGSL compute shaders (wgpu)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the top-5 classes of each image (or raw tensor).
    Classify(Classify),
    /// Write every block's output as `1×C×H×W` float32 .npy files, and logits.npy.
    Dump(Dump),
    /// Time the network on a seeded input: latency, GPU time per stage and per layer.
    Bench(Bench),
    /// Print the GPU adapter the other commands would use, or why there is none.
    Adapter,
}

#[derive(Args)]
struct Common {
    /// Weights: `.safetensors` with torchvision/timm or Keras names.
    #[arg(long)]
    weights: PathBuf,
    /// `inspect` (separate conv, batchnorm and add dispatches) or `fast` (folded and fused).
    #[arg(long, default_value = "fast", value_parser = parse_mode)]
    mode: Mode,
    /// Network input size for images (the centre crop); `--height`/`--width` override it.
    #[arg(long, default_value_t = 224)]
    size: usize,
    #[arg(long)]
    height: Option<usize>,
    #[arg(long)]
    width: Option<usize>,
    /// Fast mode's conv kernels: `direct`, `gemm`, or `splitk[:N]` (split K
    /// until a layer has about N workgroups); by default split-K on GPUs, plain GEMM on CPU adapters.
    #[arg(long, value_parser = parse_conv)]
    conv: Option<ConvKernels>,
    /// How fast mode stores activations and conv weights: `f32` (default) or
    /// `f16` (needs the adapter's shader-f16; arithmetic stays f32).
    #[arg(long, default_value = "f32", value_parser = parse_precision)]
    precision: Precision,
}

#[derive(Args)]
struct Classify {
    #[command(flatten)]
    common: Common,
    /// Class names: a text file with one per line, or a JSON array of strings.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// One JSON object per input and line: logits, top5, adapter, time.
    #[arg(long)]
    json: bool,
    /// A raw `1×3×H×W` float32 NCHW input (no preprocessing); may repeat.
    #[arg(long)]
    tensor: Vec<PathBuf>,
    /// Images (PNG, JPEG, WebP, BMP, GIF).
    images: Vec<PathBuf>,
}

#[derive(Args)]
struct Dump {
    #[command(flatten)]
    common: Common,
    /// A raw `1×3×H×W` float32 NCHW input instead of an image.
    #[arg(long)]
    tensor: Option<PathBuf>,
    /// Output folder (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Also write every intermediate tensor the mode keeps (all of them in inspect mode).
    #[arg(long)]
    all: bool,
    image: Option<PathBuf>,
}

#[derive(Args)]
struct Bench {
    #[command(flatten)]
    common: Common,
    /// Timed runs, after 2 warm-ups.
    #[arg(long, default_value_t = 20)]
    iters: usize,
    /// How many of the slowest layers to list (per-layer GPU times).
    #[arg(long, default_value_t = 10)]
    layers: usize,
    /// Also write every figure (each run, each layer) to this JSON file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn parse_precision(s: &str) -> std::result::Result<Precision, String> {
    Precision::parse(s).ok_or_else(|| format!("unknown precision `{s}`: use `f32` or `f16`"))
}

fn parse_conv(s: &str) -> std::result::Result<ConvKernels, String> {
    ConvKernels::parse(s).map_err(|e| e.to_string())
}

fn parse_mode(s: &str) -> std::result::Result<Mode, String> {
    Mode::parse(s).ok_or_else(|| format!("unknown mode `{s}`: use `fast` or `inspect`"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = pollster::block_on(async {
        match cli.command {
            Command::Classify(c) => classify(c).await,
            Command::Dump(d) => dump(d).await,
            Command::Bench(b) => bench(b).await,
            Command::Adapter => adapter().await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

enum Input {
    Tensor { h: usize, w: usize, data: Vec<f32> },
    Image { w: usize, h: usize, rgba: Vec<u8> },
}

fn read_weights(path: &Path) -> Result<Weights> {
    let bytes = std::fs::read(path).map_err(|e| Error::new(format!("cannot read {}: {e}", path.display())))?;
    let w = Weights::from_safetensors(&bytes).map_err(|e| Error::new(format!("{}: {e}", path.display())))?;
    if !w.unused.is_empty() {
        eprintln!("warning: {} tensor(s) in {} are not used by {}, e.g. `{}`", w.unused.len(), path.display(), w.model.description, w.unused[0]);
    }
    Ok(w)
}

/// Reads a float32 `.npy` of shape `1×3×H×W` (or `3×H×W`).
fn read_tensor(path: &Path) -> Result<Input> {
    let ctx = |e: &dyn std::fmt::Display| Error::new(format!("{}: {e}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| ctx(&e))?;
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| ctx(&format!("not a valid .npy file ({e})")))?;
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let (c, h, w) = match shape[..] {
        [1, c, h, w] | [c, h, w] => (c, h, w),
        _ => return Err(ctx(&format!("expected a 1×3×H×W tensor, got shape {shape:?}"))),
    };
    if c != 3 {
        return Err(ctx(&format!("expected 3 channels, got shape {shape:?}")));
    }
    if npy.dtype() != npyz::DType::Plain("<f4".parse().unwrap()) {
        return Err(ctx(&format!("expected little-endian float32 data, got {:?}", npy.dtype())));
    }
    if npy.order() != npyz::Order::C {
        return Err(ctx(&"expected C (row-major) order"));
    }
    // Check the header's sizes against the file before trusting them.
    let n = c.checked_mul(h).and_then(|v| v.checked_mul(w)).filter(|n| n * 4 <= bytes.len());
    if n.is_none() {
        return Err(ctx(&format!("the header claims shape {shape:?}, more data than the file holds")));
    }
    let data: Vec<f32> = npy.into_vec().map_err(|e| ctx(&e))?;
    Ok(Input::Tensor { h, w, data })
}

fn read_image(path: &Path) -> Result<Input> {
    let img = image::open(path).map_err(|e| Error::new(format!("{}: cannot decode image: {e}", path.display())))?;
    let rgba = img.to_rgba8();
    let (w, h) = rgba.dimensions();
    Ok(Input::Image { w: w as usize, h: h as usize, rgba: rgba.into_raw() })
}

fn read_labels(path: &Path, classes: usize) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::new(format!("cannot read labels {}: {e}", path.display())))?;
    let labels: Vec<String> = if text.trim_start().starts_with('[') {
        serde_json::from_str(&text).map_err(|e| Error::new(format!("{}: not a JSON array of strings: {e}", path.display())))?
    } else {
        text.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()
    };
    if labels.len() != classes {
        bail!("{} has {} labels but the network has {} classes", path.display(), labels.len(), classes);
    }
    Ok(labels)
}

/// Engines by input size, sharing one device.
struct Engines {
    gpu: Rc<Gpu>,
    weights: Weights,
    mode: Mode,
    conv: Option<ConvKernels>,
    precision: Precision,
    image_size: (usize, usize),
    by_size: HashMap<(usize, usize), Engine>,
}

impl Engines {
    async fn new(c: &Common) -> Result<Engines> {
        let weights = read_weights(&c.weights)?;
        let image_size = (c.height.unwrap_or(c.size), c.width.unwrap_or(c.size));
        let gpu = Rc::new(Gpu::new().await?);
        Ok(Engines { gpu, weights, mode: c.mode, conv: c.conv, precision: c.precision, image_size, by_size: HashMap::new() })
    }

    async fn run(&mut self, input: &Input) -> Result<&mut Engine> {
        let size = match input {
            Input::Tensor { h, w, .. } => (*h, *w),
            Input::Image { .. } => self.image_size,
        };
        if !self.by_size.contains_key(&size) {
            let mut e = Engine::with_precision(self.gpu.clone(), &self.weights, self.mode, self.precision, size.0, size.1).await?;
            // The command line reads logits only: no per-frame statistics.
            e.set_stats(false);
            if let Some(conv) = self.conv {
                e.set_conv_kernels(conv).await?;
            }
            self.by_size.insert(size, e);
        }
        let engine = self.by_size.get_mut(&size).unwrap();
        match input {
            Input::Tensor { data, .. } => engine.run_tensor(data)?,
            Input::Image { w, h, rgba } => engine.run_rgba(rgba, *w, *h, &Preprocess::imagenet(size.0, size.1))?,
        }
        Ok(engine)
    }
}

async fn classify(c: Classify) -> Result<()> {
    if c.tensor.is_empty() && c.images.is_empty() {
        bail!("nothing to classify: give image paths or --tensor X.npy");
    }
    let mut engines = Engines::new(&c.common).await?;
    let labels = match &c.labels {
        Some(p) => Some(read_labels(p, engines.weights.model.classes())?),
        None => None,
    };
    let inputs = c.tensor.iter().map(|p| (p, true)).chain(c.images.iter().map(|p| (p, false)));
    for (path, is_tensor) in inputs {
        let input = if is_tensor { read_tensor(path)? } else { read_image(path)? };
        let t0 = Instant::now();
        let engine = engines.run(&input).await?;
        let out = engine.output().await?.clone();
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        let top = out.top(5);
        let label = |i: usize| labels.as_ref().map_or_else(|| format!("class {i}"), |l| l[i].clone());
        if c.json {
            let top5: Vec<_> = top
                .iter()
                .map(|&(i, p)| {
                    let mut o = serde_json::json!({ "index": i, "probability": p });
                    if let Some(l) = &labels {
                        o["label"] = l[i].clone().into();
                    }
                    o
                })
                .collect();
            let line = serde_json::json!({
                "input": path.display().to_string(),
                "model": engine.model().description,
                "mode": engine.mode().as_str(),
                "precision": engine.precision().as_str(),
                "adapter": engine.gpu().adapter_name(),
                "input_size": [engine.input_size().0, engine.input_size().1],
                "ms": ms,
                "top5": top5,
                "logits": out.logits,
            });
            println!("{line}");
        } else {
            let (h, w) = engine.input_size();
            println!("{}  ({}, {h}×{w}, {} mode, {ms:.1} ms on {})", path.display(), engine.model().description, engine.mode().as_str(), engine.gpu().adapter_name());
            for (rank, (i, p)) in top.iter().enumerate() {
                println!("  {}. {:>5.1}%  {}", rank + 1, p * 100.0, label(*i));
            }
        }
    }
    Ok(())
}

fn write_npy(path: &Path, shape: &[u64], data: &[f32]) -> Result<()> {
    let ctx = |e: std::io::Error| Error::new(format!("cannot write {}: {e}", path.display()));
    let file = std::io::BufWriter::new(std::fs::File::create(path).map_err(ctx)?);
    let mut w = npyz::WriteOptions::new().default_dtype().shape(shape).writer(file).begin_nd().map_err(ctx)?;
    w.extend(data.iter().copied()).map_err(ctx)?;
    w.finish().map_err(ctx)
}

async fn dump(d: Dump) -> Result<()> {
    let input = match (&d.tensor, &d.image) {
        (Some(t), None) => read_tensor(t)?,
        (None, Some(i)) => read_image(i)?,
        _ => bail!("give exactly one input: --tensor X.npy or an image path"),
    };
    let mut engines = Engines::new(&d.common).await?;
    std::fs::create_dir_all(&d.out).map_err(|e| Error::new(format!("cannot create {}: {e}", d.out.display())))?;
    let engine = engines.run(&input).await?;
    let plan = engine.plan();
    let mut names: Vec<String> = plan.blocks.iter().filter(|b| b.kind != "head").map(|b| b.name.clone()).collect();
    if d.all {
        let extra: Vec<String> = plan.tensors.iter().filter(|t| t.keep && !names.contains(&t.name)).map(|t| t.name.clone()).collect();
        names.extend(extra);
    }
    for name in &names {
        let (s, data) = engine.read(name).await?;
        write_npy(&d.out.join(format!("{name}.npy")), &[1, s.c as u64, s.h as u64, s.w as u64], &data)?;
    }
    let out = engine.output().await?.clone();
    write_npy(&d.out.join("logits.npy"), &[1, out.logits.len() as u64], &out.logits)?;
    eprintln!("wrote {} tensors and logits.npy to {}", names.len(), d.out.display());
    Ok(())
}

async fn adapter() -> Result<()> {
    let gpu = Gpu::new().await?;
    let i = &gpu.adapter_info;
    println!("{} · {:?} · driver {} {}", gpu.adapter_name(), i.device_type, i.driver, i.driver_info);
    println!("features used: {:?}", gpu.features);
    println!("largest storage binding: {} bytes", gpu.limits.max_storage_buffer_binding_size);
    Ok(())
}

async fn bench(b: Bench) -> Result<()> {
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
        let st = engine.stats().stage_ms.clone().unwrap_or_default();
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
    let engine = engines.by_size.get_mut(&(h, w)).expect("planned above");
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
        Mode::Fast => engine.conv_kernels().name(),
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
    println!("CPU: upload + recording + submit, median {record_median:.3} ms");
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
