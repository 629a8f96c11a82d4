//! `resnet grad` and `resnet train`: gradients of one batch against
//! independent references, and training on a folder of images or arrays.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use clap::Args;
use resnet::train::{self, Augment, BnMode, FitConfig, OptimConfig, OptimizerKind, Schedule, TrainConfig, Trainable, Trainer};
use resnet::weights::save::{f32_tensor, serialize, Namer};
use resnet::{bail, Error, ErrorKind, Gpu, Preprocess, Result, Weights};

use crate::io::{read_batch, read_class_indices, read_weights, write_npy, write_npy_of};
use crate::BackendChoice;

#[derive(Args)]
pub struct Grad {
    /// Weights: `.safetensors` with torchvision/timm or Keras names.
    #[arg(long)]
    weights: PathBuf,
    /// `N×3×H×W` float32: the raw network input (no preprocessing).
    #[arg(long)]
    input: PathBuf,
    /// `N` class indices, int32 or int64.
    #[arg(long)]
    labels: PathBuf,
    /// Output folder: loss.npy, logits.npy, grads.safetensors.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    what: What,
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
}

/// What trains and how batchnorm normalises.
#[derive(Args)]
struct What {
    /// `frozen`: the running statistics (γ and β train); `batch`: the
    /// batch's statistics, as in PyTorch's and Keras' training mode.
    #[arg(long, value_enum, default_value_t = BnMode::Frozen)]
    bn: BnMode,
    /// `all`, `last-stage` (the last stage's blocks and the dense layer) or
    /// `head` (the dense layer). What does not train runs as in inference.
    #[arg(long, value_enum)]
    train: Option<Trainable>,
}

impl What {
    fn config(&self, default: Trainable) -> TrainConfig {
        TrainConfig { bn: self.bn, train: self.train.unwrap_or(default) }
    }
}

/// Where training runs: the GPU (`Some`) or the CPU backend. `auto` takes
/// a hardware GPU if there is one; a software adapter (lavapipe) trains
/// slower than the CPU backend, so `auto` leaves it alone.
pub async fn train_device(b: BackendChoice) -> Result<Option<Rc<Gpu>>> {
    match b {
        BackendChoice::Gpu => Ok(Some(Rc::new(Gpu::new().await?))),
        BackendChoice::Cpu => Ok(None),
        BackendChoice::Auto => match Gpu::new().await {
            Ok(gpu) if !gpu.is_software() => Ok(Some(Rc::new(gpu))),
            Ok(gpu) => {
                eprintln!("note: training on the CPU backend: {} is a software adapter (--backend gpu uses it anyway)", gpu.adapter_name());
                Ok(None)
            }
            Err(why) => {
                eprintln!("note: training on the CPU backend: {why}");
                Ok(None)
            }
        },
    }
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::of(ErrorKind::Io, format!("cannot create {}: {e}", dir.display())))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::of(ErrorKind::Io, format!("cannot write {}: {e}", path.display())))
}

/// Examples: `N` raw `3×H×W` inputs one after another, and their classes.
struct Dataset {
    x: Vec<f32>,
    labels: Vec<usize>,
    height: usize,
    width: usize,
}

impl Dataset {
    fn len(&self) -> usize {
        self.labels.len()
    }
}

/// An image-folder example: class, width, height, RGBA8 pixels.
type Image = (usize, usize, usize, Vec<u8>);

/// Reads `--input` and `--labels`, checked against each other.
fn read_examples(input: &Path, labels_path: &Path) -> Result<Dataset> {
    let (n, height, width, x) = read_batch(input)?;
    let labels = read_class_indices(labels_path)?;
    if labels.len() != n {
        bail!(BadInput, "{} holds {n} examples but {} holds {} labels: give one label per example", input.display(), labels_path.display(), labels.len());
    }
    Ok(Dataset { x, labels, height, width })
}

fn check_labels(d: &Dataset, w: &Weights, source: &Path) -> Result<()> {
    let classes = w.model.classes();
    if let Some((i, &y)) = d.labels.iter().enumerate().find(|(_, &y)| y >= classes) {
        bail!(BadInput, "{}: label {i} is {y}, out of range: the network has {classes} classes (0 to {})", source.display(), classes - 1);
    }
    Ok(())
}

pub async fn grad(g: Grad) -> Result<()> {
    let weights = read_weights(&g.weights)?;
    let data = read_examples(&g.input, &g.labels)?;
    check_labels(&data, &weights, &g.labels)?;
    let config = g.what.config(Trainable::All);
    let (loss, logits, grads) = match train_device(g.backend).await? {
        Some(gpu) => train::gpu::gradients(gpu, &weights, &data.x, data.len(), data.height, data.width, &data.labels, config).await?,
        None => train::gradients(&weights, &data.x, data.len(), data.height, data.width, &data.labels, config)?,
    };
    create_dir(&g.out)?;
    write_npy_of(&g.out.join("loss.npy"), &[], &[loss as f32])?;
    write_npy(&g.out.join("logits.npy"), &[data.len() as u64, weights.model.classes() as u64], &logits)?;
    // The gradients under the weights file's own names and layouts.
    let m = &weights.model;
    let namer = Namer::for_model(m);
    let mut tensors = Vec::new();
    for cb in m.conv_bns() {
        if let Some((w, b)) = grads.convs.get(&cb.conv.name) {
            tensors.push(namer.conv_kernel(&cb.conv, w));
            if let Some(b) = b {
                tensors.push(namer.conv_bias(&cb.conv, b));
            }
        }
        if let Some((gamma, beta)) = grads.bns.get(&cb.bn.name) {
            tensors.push(f32_tensor(namer.bn_name(&cb.bn.name, 0), vec![gamma.len()], gamma));
            tensors.push(f32_tensor(namer.bn_name(&cb.bn.name, 1), vec![beta.len()], beta));
        }
    }
    tensors.push(namer.dense_kernel(m, &grads.dense.0));
    tensors.push(namer.dense_bias(m, &grads.dense.1));
    write_file(&g.out.join("grads.safetensors"), &serialize(&tensors, None))?;
    eprintln!("loss {loss:.6} over {} examples; gradients of {} tensors written to {}", data.len(), tensors.len(), g.out.display());
    Ok(())
}

#[derive(Args)]
pub struct Train {
    #[arg(long)]
    weights: PathBuf,
    /// A folder with one sub-folder of images per class (class names from the folder names).
    #[arg(long, conflicts_with_all = ["input", "labels"])]
    data: Option<PathBuf>,
    /// `N×3×H×W` float32 raw network inputs (with --labels).
    #[arg(long, requires = "labels")]
    input: Option<PathBuf>,
    /// `N` class indices of the weights' classes, int32 or int64.
    #[arg(long, requires = "input")]
    labels: Option<PathBuf>,
    /// Where to write the trained weights (`.safetensors`, the names and layouts they came in).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    what: What,
    #[arg(long, value_enum, default_value_t = OptimizerKind::Sgd)]
    optimizer: OptimizerKind,
    /// Learning rate.
    #[arg(long, default_value_t = 0.01)]
    lr: f32,
    /// SGD's momentum.
    #[arg(long, default_value_t = 0.9)]
    momentum: f32,
    /// Weight decay (default: 0 for SGD, 0.01 for AdamW, as in PyTorch).
    #[arg(long)]
    weight_decay: Option<f32>,
    /// `constant`, or `cosine` from --lr down to 0 over the run.
    #[arg(long, value_enum, default_value_t = Schedule::Constant)]
    schedule: Schedule,
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Examples per step.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Random resized crops (images only), flips and brightness/contrast jitter, seeded.
    #[arg(long, value_enum, default_value_t = OnOff::Off)]
    augment: OnOff,
    /// The share of the examples held out to measure validation accuracy.
    #[arg(long, default_value_t = 0.0)]
    val: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The network input for --data images (centre crop after resizing, as classify does).
    #[arg(long, default_value_t = 224)]
    size: usize,
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OnOff {
    On,
    Off,
}

/// The images of an image-folder layout: (class names, images).
fn read_image_folders(dir: &Path) -> Result<(Vec<String>, Vec<Image>)> {
    let io = |p: &Path, e: std::io::Error| Error::of(ErrorKind::Io, format!("cannot read {}: {e}", p.display()));
    let sorted = |p: &Path| -> Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(p).map_err(|e| io(p, e))?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        v.sort();
        Ok(v)
    };
    let classes: Vec<PathBuf> = sorted(dir)?.into_iter().filter(|p| p.is_dir()).collect();
    if classes.len() < 2 {
        bail!(BadInput, "{}: expected one sub-folder of images per class, at least two classes; found {}", dir.display(), classes.len());
    }
    let mut images = Vec::new();
    let mut names = Vec::new();
    for (ci, class) in classes.iter().enumerate() {
        let files: Vec<PathBuf> = sorted(class)?.into_iter().filter(|p| p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))).collect();
        if files.is_empty() {
            bail!(BadInput, "class folder {} holds no images: every class needs at least one", class.display());
        }
        for f in files {
            let img = image::open(&f).map_err(|e| Error::of(ErrorKind::BadInput, format!("{}: cannot decode image: {e}", f.display())))?.to_rgba8();
            let (w, h) = (img.width() as usize, img.height() as usize);
            Preprocess::imagenet(32, 32).geometry(w, h).map_err(|e| e.context(f.display()))?;
            images.push((ci, w, h, img.into_raw()));
        }
        names.push(class.file_name().map_or_else(|| format!("class {ci}"), |n| n.to_string_lossy().into_owned()));
    }
    Ok((names, images))
}

pub async fn train(t: Train) -> Result<()> {
    let mut weights = read_weights(&t.weights)?;
    let (images, data) = match (&t.data, &t.input, &t.labels) {
        (Some(dir), None, None) => {
            resnet::model::check_input_size(t.size, t.size)?;
            let (names, images) = read_image_folders(dir)?;
            let same = weights.labels.as_ref().map_or(names.len() == weights.model.classes(), |l| *l == names);
            if same {
                weights.labels = Some(names);
            } else {
                eprintln!("note: {} classes ({}): a new, seeded dense layer replaces `{}`", names.len(), names.join(", "), weights.model.head.name);
                train::fit::new_head(&mut weights, names, t.seed);
            }
            (images, None)
        }
        (None, Some(x), Some(y)) => {
            let data = read_examples(x, y)?;
            check_labels(&data, &weights, y)?;
            (Vec::new(), Some(data))
        }
        _ => bail!(BadInput, "give the examples as --data DIR (a sub-folder of images per class) or as --input X.npy with --labels Y.npy"),
    };
    let config = t.what.config(Trainable::Head);
    let mut optim = OptimConfig::new(t.optimizer, t.lr);
    optim.momentum = t.momentum;
    optim.schedule = t.schedule;
    if let Some(wd) = t.weight_decay {
        optim.weight_decay = wd;
    }
    let fit = FitConfig { epochs: t.epochs, batch: t.batch, val_fraction: t.val, seed: t.seed };
    let (height, width) = data.as_ref().map_or((t.size, t.size), |d| (d.height, d.width));
    let n = data.as_ref().map_or(images.len(), Dataset::len);
    eprintln!(
        "training {} of {} on {n} examples ({height}×{width}{}), {} classes: batchnorm {}, {}, lr {}, {} epochs of batch {}",
        config.train,
        weights.model.description,
        if t.augment == OnOff::On { ", augmented" } else { "" },
        weights.model.classes(),
        config.bn,
        t.optimizer,
        t.lr,
        t.epochs,
        t.batch
    );
    let t0 = std::time::Instant::now();
    let mut trainer = match train_device(t.backend).await? {
        Some(gpu) => {
            eprintln!("on the GPU: {}", gpu.adapter_name());
            Trainer::new_gpu(gpu, weights, height, width, config)?
        }
        None => Trainer::new(weights, height, width, config)?,
    };
    trainer.set_augment((t.augment == OnOff::On).then(Augment::default), t.seed)?;
    for (label, w, h, rgba) in &images {
        trainer.add_pixels(rgba, *w, *h, *label).await?;
    }
    drop(images);
    if let Some(d) = &data {
        let per = 3 * height * width;
        for (x, y) in d.x.chunks(per * 32).zip(d.labels.chunks(32)) {
            trainer.add(x, y).await?;
        }
    }
    trainer.begin(optim, fit)?;
    // Step times, from the end of one step to the end of the next (the first
    // from the start: it includes keeping the frozen outputs).
    let mut last = t0;
    let mut step_ms = Vec::new();
    let mut reports = Vec::new();
    while let Some(r) = trainer.step().await? {
        let (step, total, loss) = (r.step, r.steps, r.loss);
        reports.extend(r.epoch.clone());
        let now = std::time::Instant::now();
        step_ms.push((now - last).as_secs_f64() * 1e3);
        last = now;
        let width = 30;
        let done = step * width / total.max(1);
        eprint!("\r[{}{}] step {step}/{total}  loss {loss:.4}  ", "=".repeat(done), " ".repeat(width - done));
    }
    eprintln!();
    let weights = trainer.weights;
    for r in &reports {
        let val = r.val_accuracy.map_or(String::new(), |v| format!(", validation accuracy {:.1}%", v * 100.0));
        println!("epoch {}/{}: loss {:.4}, train accuracy {:.1}%{val}", r.epoch, reports.len(), r.loss, r.train_accuracy * 100.0);
    }
    write_file(&t.out, &weights.to_safetensors())?;
    let later = &step_ms[1.min(step_ms.len())..];
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    eprintln!(
        "trained in {:.1} s ({} steps; first {:.1} ms, then median {:.1} ms a step); weights written to {}",
        t0.elapsed().as_secs_f64(), step_ms.len(), step_ms.first().copied().unwrap_or(f64::NAN), median(later), t.out.display()
    );
    Ok(())
}
