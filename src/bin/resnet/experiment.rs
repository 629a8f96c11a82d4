//! `resnet experiment`: a CIFAR-style ResNet and its plain twin trained side
//! by side on the bundled digits (or another dataset file), with the
//! gradient norms at every block's input and ‖F(x)‖/‖x‖ per step.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use resnet::dataset::Dataset;
use resnet::network::{Init, NetSpec};
use resnet::train::experiment::{Experiment, ExperimentConfig, StepRecord};
use resnet::{Error, ErrorKind, Result};

use crate::train::train_device;
use crate::BackendChoice;

/// The dataset that ships: UCI handwritten digits, 8×8 (data/digits.LICENSE).
const DIGITS: &[u8] = include_bytes!("../../../data/digits.bin");

#[derive(Args)]
pub struct ExperimentArgs {
    /// 6n+2: 8, 14, 20, 32, 44, 56, …
    #[arg(long, default_value_t = 20)]
    depth: usize,
    /// Without batchnorm (each conv keeps a trained per-channel scale and shift).
    #[arg(long)]
    no_bn: bool,
    /// `he` or `glorot` (Keras' glorot_uniform, the lesson's).
    #[arg(long, value_enum, default_value_t = Init::He)]
    init: Init,
    /// Each residual block's last batchnorm starts at γ = 0.
    #[arg(long)]
    zero_gamma: bool,
    /// Stage widths.
    #[arg(long, value_delimiter = ',', default_values_t = [16, 32, 64])]
    widths: Vec<usize>,
    /// SGD (momentum 0.9) learning rate.
    #[arg(long, default_value_t = 0.05)]
    lr: f32,
    #[arg(long, default_value_t = 1e-4)]
    weight_decay: f32,
    #[arg(long, default_value_t = 64)]
    batch: usize,
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Stop after this many steps (of each network).
    #[arg(long)]
    steps: Option<usize>,
    /// Test accuracy every this many steps.
    #[arg(long, default_value_t = 10)]
    eval_every: usize,
    /// Seeds the weights (both networks alike) and the shuffle.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Use only the first N training examples.
    #[arg(long)]
    train_examples: Option<usize>,
    /// A dataset file (format in tools/make_digits.py); the bundled digits by default.
    #[arg(long)]
    data: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
    /// Write every step's records as JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write both networks' initial weights here (resnet.safetensors,
    /// plain.safetensors; they load back as themselves) and stop.
    #[arg(long)]
    save_init: Option<PathBuf>,
}

fn io_error(what: &str, path: &std::path::Path, e: std::io::Error) -> Error {
    Error::of(ErrorKind::Io, format!("cannot {what} {}: {e}", path.display()))
}

pub async fn experiment(a: ExperimentArgs) -> Result<()> {
    let bytes = match &a.data {
        Some(p) => std::fs::read(p).map_err(|e| io_error("read", p, e))?,
        None => DIGITS.to_vec(),
    };
    let data = Dataset::parse(&bytes)?;
    let widths: [usize; 3] = a.widths.clone().try_into().map_err(|_| Error::of(ErrorKind::BadInput, "--widths takes three numbers, e.g. 16,32,64"))?;
    let net = NetSpec { depth: a.depth, residual: true, batchnorm: !a.no_bn, init: a.init, zero_gamma: a.zero_gamma, widths, classes: data.classes, channels: 3, seed: a.seed };
    let config = ExperimentConfig { net, lr: a.lr, weight_decay: a.weight_decay, batch: a.batch, epochs: a.epochs, eval_every: a.eval_every, seed: a.seed, train_examples: a.train_examples };
    config.check()?;
    if a.steps == Some(0) {
        return Err(Error::of(ErrorKind::BadInput, "--steps must be at least 1"));
    }
    if let Some(dir) = &a.save_init {
        std::fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e))?;
        for residual in [true, false] {
            let w = NetSpec { residual, ..config.net.clone() }.weights()?;
            let path = dir.join(if residual { "resnet.safetensors" } else { "plain.safetensors" });
            std::fs::write(&path, w.to_safetensors()).map_err(|e| io_error("write", &path, e))?;
        }
        eprintln!("wrote {}/resnet.safetensors and plain.safetensors", dir.display());
        return Ok(());
    }
    let gpu = train_device(a.backend).await?;
    let on = if gpu.is_some() { "the GPU" } else { "the CPU backend" };
    let mut ex = Experiment::new(config.clone(), &data, gpu).await?;
    let steps = a.steps.unwrap_or(usize::MAX).min(ex.steps());
    let names = [ex.arms[0].spec.name(), ex.arms[1].spec.name()];
    eprintln!(
        "{} vs {} on {} ({} training, {} test digits), batchnorm {}, init {}{}, lr {}, batch {}, {} steps",
        names[0], names[1], on, config.train_examples.unwrap_or(data.train).min(data.train), data.len() - data.train,
        if config.net.batchnorm { "on" } else { "off" }, a.init, if a.zero_gamma { ", zero-γ" } else { "" }, a.lr, a.batch, steps
    );
    let t0 = Instant::now();
    let mut last: Option<[StepRecord; 2]> = None;
    while ex.done() < steps {
        let Some(r) = ex.step().await? else { break };
        if r[0].test_accuracy.is_some() || ex.done() == steps {
            let acc = |r: &StepRecord| r.test_accuracy.map_or("—".into(), |v| format!("{:.1}%", 100.0 * v));
            eprintln!("step {:>4}/{steps}  {}: loss {:.4} test {}  |  {}: loss {:.4} test {}  ({:.1} s)", r[0].step, names[0], r[0].loss, acc(&r[0]), names[1], r[1].loss, acc(&r[1]), t0.elapsed().as_secs_f64());
        }
        last = Some(r);
    }
    let secs = t0.elapsed().as_secs_f64();
    // The last step's test accuracy, measured now where the schedule did not.
    let mut finals = [0.0; 2];
    for (i, f) in finals.iter_mut().enumerate() {
        *f = match last.as_ref().and_then(|r| r[i].test_accuracy) {
            Some(v) => v,
            None => ex.test_accuracy(i).await?,
        };
    }
    println!("network\tfinal train loss\ttest accuracy\t‖∂L/∂x‖ first block (step 1)\t(mean)\t‖∂L/∂x‖ last block (step 1)\tmax ‖F(x)‖/‖x‖ (step 1)");
    for (i, arm) in ex.arms.iter().enumerate() {
        let r = &arm.records;
        // The last tenth of the steps' losses (at least one step): the loss the run ends at.
        let tail = &r[r.len() - (r.len() / 10).max(1)..];
        let loss = tail.iter().map(|s| s.loss).sum::<f64>() / tail.len() as f64;
        let first = r[0].grad_norms[0].unwrap_or(f64::NAN);
        let mean = r.iter().filter_map(|s| s.grad_norms[0]).sum::<f64>() / r.len() as f64;
        let lastb = r[0].grad_norms.last().copied().flatten().unwrap_or(f64::NAN);
        let ratio = r[0].ratios.iter().flatten().fold(None, |m: Option<f64>, &v| Some(m.map_or(v, |m| m.max(v))));
        println!("{}\t{loss:.4}\t{:.1}%\t{first:.3e}\t{mean:.3e}\t{lastb:.3e}\t{}", arm.spec.name(), 100.0 * finals[i], ratio.map_or("—".into(), |v| format!("{v:.3}")));
    }
    println!("{} steps of each network in {secs:.1} s on {on}", ex.done());
    if let Some(path) = &a.out {
        let arms: Vec<serde_json::Value> = ex
            .arms
            .iter()
            .enumerate()
            .map(|(i, arm)| serde_json::json!({ "name": arm.spec.name(), "network": serde_json::from_str::<serde_json::Value>(&arm.spec.to_json()).unwrap(), "finalTestAccuracy": finals[i], "records": arm.records.iter().map(StepRecord::to_json).collect::<Vec<_>>() }))
            .collect();
        let doc = serde_json::json!({ "blocks": ex.blocks, "lr": a.lr, "batch": a.batch, "seconds": secs, "backend": on, "arms": arms });
        std::fs::write(path, serde_json::to_string(&doc).expect("JSON")).map_err(|e| io_error("write", path, e))?;
    }
    Ok(())
}
