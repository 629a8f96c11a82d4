//! `resnet`: the native command line. Classifies images or raw tensors and
//! dumps every block's output, on whatever GPU wgpu finds (Vulkan here) or,
//! without one, on the CPU.

use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use resnet::{bail, BlockRole, ConvKernels, Device, Engine, EngineConfig, Error, ErrorKind, Gpu, Mode, Precision, Preprocess, Result, Submit, Weights};

mod bench;
mod experiment;
mod io;
mod train;

use io::{read_image, read_labels, read_tensor, read_weights, write_npy, Input};

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
    /// The loss, logits and every trainable tensor's gradient for one batch.
    Grad(train::Grad),
    /// Train on a folder of images per class (or arrays) and save the weights.
    Train(train::Train),
    /// Why residual? A CIFAR-style ResNet and its plain twin trained side by side on handwritten digits.
    Experiment(experiment::ExperimentArgs),
}

#[derive(Args)]
struct Common {
    /// Weights: `.safetensors` with torchvision/timm or Keras names.
    #[arg(long)]
    weights: PathBuf,
    /// `inspect` (separate conv, batchnorm and add dispatches) or `fast` (folded and fused).
    #[arg(long, value_enum, default_value_t = Mode::Fast)]
    mode: Mode,
    /// Network input size for images (the centre crop); `--height`/`--width` override it.
    #[arg(long, default_value_t = 224)]
    size: usize,
    #[arg(long)]
    height: Option<usize>,
    #[arg(long)]
    width: Option<usize>,
    /// Fast mode's conv kernels: `direct`, `gemm`, `splitk[+fold[F]][+small][:N[:S]]`
    /// (split K until a layer has about N workgroups, slices of at least S;
    /// `+fold`: the next conv finishes the partial sums, `+foldF` only those
    /// of at most F slices; `+small`: 32×32 tiles instead of a split where
    /// they give N/2 workgroups) or `coop[+fold[F]][:N[:S]]` (f16 only: the matrix-fragment GEMM, on tensor
    /// cores where the adapter has cooperative matrices). By default split-K
    /// on GPUs, plain GEMM on CPU adapters, coop under f16 with cooperative matrices.
    #[arg(long, value_parser = parse_conv)]
    conv: Option<ConvKernels>,
    /// How fast mode stores activations and conv weights: `f32` (default) or
    /// `f16` (needs the adapter's shader-f16; the GEMMs then multiply in f16
    /// and accumulate in f32, the other kernels compute in f32).
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    precision: Precision,
    /// How a GPU frame is submitted: `stage` (a command buffer per stage,
    /// each submitted once recorded, so the GPU starts while the CPU records
    /// the rest) or `frame` (one command buffer). By default per stage on
    /// GPUs, per frame on CPU adapters.
    #[arg(long, value_enum)]
    submit: Option<Submit>,
    /// Where to run: `gpu`, `cpu`, or `auto` (the GPU if wgpu finds one that
    /// meets the limits, else the CPU, saying so on stderr).
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BackendChoice {
    Auto,
    Gpu,
    Cpu,
}

/// The device `--backend` asks for.
async fn device(choice: BackendChoice) -> Result<Device> {
    Ok(match choice {
        BackendChoice::Gpu => Device::Gpu(Rc::new(Gpu::new().await?)),
        BackendChoice::Cpu => Device::Cpu,
        BackendChoice::Auto => match Device::auto().await {
            (d, None) => d,
            (d, Some(why)) => {
                eprintln!("note: running on the CPU: {why}");
                d
            }
        },
    })
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
    /// How many of the slowest layers to list (per-layer GPU times); 0 skips the per-layer timing.
    #[arg(long, default_value_t = 10)]
    layers: usize,
    /// Also write every figure (each run, each layer) to this JSON file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Compute the per-block statistics each frame, as the page does
    /// (channel means, ‖F(x)‖ and ‖x‖); the other commands never do.
    #[arg(long)]
    stats: bool,
}

fn parse_conv(s: &str) -> std::result::Result<ConvKernels, String> {
    s.parse().map_err(|e: Error| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = pollster::block_on(async {
        match cli.command {
            Command::Classify(c) => classify(c).await,
            Command::Dump(d) => dump(d).await,
            Command::Bench(b) => bench::bench(b).await,
            Command::Adapter => adapter().await,
            Command::Grad(g) => train::grad(g).await,
            Command::Train(t) => train::train(t).await,
            Command::Experiment(e) => experiment::experiment(e).await,
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


/// One engine, re-planned for each input size it meets (the weights stay
/// uploaded once; an engine per size would hold a copy of them each).
struct Engines {
    device: Device,
    weights: Weights,
    config: EngineConfig,
    image_size: (usize, usize),
    engine: Option<Engine>,
    /// Whether the note on Keras weights and image preprocessing was given.
    keras_noted: bool,
}

impl Engines {
    /// `stats`: per-frame statistics (only `bench --stats`: the command
    /// line reads logits and tensors).
    async fn new(c: &Common, stats: bool) -> Result<Engines> {
        let weights = read_weights(&c.weights)?;
        let image_size = (c.height.unwrap_or(c.size), c.width.unwrap_or(c.size));
        let device = device(c.backend).await?;
        // Options that would change nothing are said so, not silently dropped.
        if matches!(device, Device::Cpu) && (c.conv.is_some() || c.submit.is_some()) {
            eprintln!("note: --conv and --submit choose GPU kernels and submission; the CPU backend ignores them");
        } else if c.mode == Mode::Inspect && c.conv.is_some() {
            eprintln!("note: inspect mode runs the direct conv kernel (every intermediate kept); --conv applies to fast mode");
        }
        let config = EngineConfig { mode: c.mode, precision: c.precision, conv: c.conv, stats, submit: c.submit };
        Ok(Engines { device, weights, config, image_size, engine: None, keras_noted: false })
    }

    /// The engine, made on first use and planned for `size`.
    async fn get(&mut self, size: (usize, usize)) -> Result<&mut Engine> {
        match &mut self.engine {
            Some(e) if e.input_size() != size => e.set_input_size(size.0, size.1).await?,
            Some(_) => {}
            None => self.engine = Some(Engine::new(&self.device, &self.weights, self.config, size.0, size.1).await?),
        }
        Ok(self.engine.as_mut().expect("made above"))
    }

    async fn run(&mut self, input: &Input) -> Result<&mut Engine> {
        let size = match input {
            Input::Tensor { h, w, .. } => (*h, *w),
            Input::Image { .. } => self.image_size,
        };
        if matches!(input, Input::Image { .. }) && self.weights.model.scheme == resnet::model::Scheme::Keras && !std::mem::replace(&mut self.keras_noted, true) {
            eprintln!(
                "note: Keras-named weights: images are normalised with ImageNet's RGB mean and std and the stem's max pool is unpadded, as in the lesson's model; \
                 keras-applications' ResNet50 weights were trained on caffe-style BGR mean subtraction and a padded pool, so their image results will be off (classify a tensor you preprocessed with --tensor instead)"
            );
        }
        let engine = self.get(size).await?;
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
    let mut engines = Engines::new(&c.common, false).await?;
    let labels = match &c.labels {
        Some(p) => Some(read_labels(p, engines.weights.model.classes())?),
        // Trained weights carry their class names.
        None => engines.weights.labels.clone(),
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
                "adapter": engine.device_name(),
                "backend": engine.backend().as_str(),
                "input_size": [engine.input_size().0, engine.input_size().1],
                "ms": ms,
                "top5": top5,
                "logits": out.logits,
            });
            println!("{line}");
        } else {
            let (h, w) = engine.input_size();
            println!("{}  ({}, {h}×{w}, {} mode, {ms:.1} ms on {})", path.display(), engine.model().description, engine.mode().as_str(), engine.device_name());
            for (rank, (i, p)) in top.iter().enumerate() {
                println!("  {}. {:>5.1}%  {}", rank + 1, p * 100.0, label(*i));
            }
        }
    }
    Ok(())
}

async fn dump(d: Dump) -> Result<()> {
    let input = match (&d.tensor, &d.image) {
        (Some(t), None) => read_tensor(t)?,
        (None, Some(i)) => read_image(i)?,
        _ => bail!("give exactly one input: --tensor X.npy or an image path"),
    };
    let mut engines = Engines::new(&d.common, false).await?;
    std::fs::create_dir_all(&d.out).map_err(|e| Error::of(ErrorKind::Io, format!("cannot create {}: {e}", d.out.display())))?;
    let engine = engines.run(&input).await?;
    let out = engine.output().await?.clone();
    let plan = engine.plan();
    let mut names: Vec<String> = plan.blocks.iter().filter(|b| b.role != BlockRole::Head).map(|b| b.name.clone()).collect();
    if d.all {
        let extra: Vec<String> = plan.tensors.iter().filter(|t| t.keep && !names.contains(&t.name)).map(|t| t.name.clone()).collect();
        names.extend(extra);
    }
    for name in &names {
        let (s, data) = engine.read(name).await?;
        write_npy(&d.out.join(format!("{name}.npy")), &[1, s.c as u64, s.h as u64, s.w as u64], &data)?;
    }
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

