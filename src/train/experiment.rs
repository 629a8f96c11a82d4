//! The residual experiment: a CIFAR-style ResNet and its plain twin (the
//! same layers, no shortcuts), built from one description with the same
//! seed, trained side by side on the same batches with the same schedule.
//!
//! Each step records, per network, the loss, ‖∂L/∂x‖ at every block's input
//! (the blocks × steps heatmap) and ‖F(x)‖/‖x‖ of every residual block;
//! every `eval_every` steps and at the end, the test split's accuracy. One
//! call runs one step of both networks, so the browser can yield between
//! calls and a run can stop anywhere.

use std::rc::Rc;

use super::{BnMode, FitConfig, OptimConfig, OptimizerKind, Schedule, TrainConfig, Trainable, Trainer};
use crate::dataset::Dataset;
use crate::gpu::Gpu;
use crate::network::NetSpec;
use crate::plan::BlockRole;
use crate::{bail, Result};

/// What to train and how (the network's `residual` is ignored: both are built).
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentConfig {
    pub net: NetSpec,
    /// SGD with momentum 0.9, constant rate.
    pub lr: f32,
    pub weight_decay: f32,
    pub batch: usize,
    pub epochs: usize,
    /// Test accuracy every this many steps (and after the last).
    pub eval_every: usize,
    /// The shuffle's seed (the networks' own is `net.seed`).
    pub seed: u64,
    /// Training examples used (the first ones of the training split; all by default).
    pub train_examples: Option<usize>,
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        ExperimentConfig { net: NetSpec::default(), lr: 0.05, weight_decay: 1e-4, batch: 64, epochs: 3, eval_every: 10, seed: 1, train_examples: None }
    }
}

impl ExperimentConfig {
    /// A configuration from JSON: `{ "network": { …a NetSpec… }, "lr",
    /// "weightDecay", "batch", "epochs", "evalEvery", "seed", "trainExamples" }`,
    /// every key optional; unknown keys and wrong types refused.
    pub fn from_json(text: &str) -> Result<ExperimentConfig> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| crate::Error::of(crate::ErrorKind::BadInput, format!("an experiment's options are a JSON object: {e}")))?;
        let Some(obj) = v.as_object() else { bail!(BadInput, "an experiment's options are a JSON object") };
        let mut c = ExperimentConfig::default();
        for (k, v) in obj {
            let num = || v.as_f64().filter(|f| f.is_finite()).ok_or_else(|| crate::Error::of(crate::ErrorKind::BadInput, format!("`{k}` must be a number, not {v}")));
            let uint = || v.as_u64().map(|u| u.min(u32::MAX as u64) as usize).ok_or_else(|| crate::Error::of(crate::ErrorKind::BadInput, format!("`{k}` must be a whole number, not {v}")));
            match k.as_str() {
                "network" => c.net = NetSpec::from_json(&v.to_string())?,
                "lr" => c.lr = num()? as f32,
                "weightDecay" => c.weight_decay = num()? as f32,
                "batch" => c.batch = uint()?,
                "epochs" => c.epochs = uint()?,
                "evalEvery" => c.eval_every = uint()?,
                "seed" => c.seed = v.as_u64().ok_or_else(|| crate::Error::of(crate::ErrorKind::BadInput, format!("`seed` must be a whole number, not {v}")))?,
                "trainExamples" => c.train_examples = if v.is_null() { None } else { Some(uint()?) },
                _ => bail!(BadInput, "unknown experiment option `{k}`: use network, lr, weightDecay, batch, epochs, evalEvery, seed or trainExamples"),
            }
        }
        c.check()?;
        Ok(c)
    }

    pub fn check(&self) -> Result<()> {
        self.net.check()?;
        if !(self.lr.is_finite() && self.lr > 0.0 && self.lr <= 10.0) {
            bail!(BadInput, "learning rate {} is out of range: above 0, at most 10", self.lr);
        }
        if !(self.weight_decay.is_finite() && (0.0..=1.0).contains(&self.weight_decay)) {
            bail!(BadInput, "weight decay {} is out of range: 0 to 1", self.weight_decay);
        }
        if self.batch < 2 || self.batch > 1024 || self.epochs == 0 || self.epochs > 1000 || self.eval_every == 0 {
            bail!(BadInput, "batch {} (2 to 1024), epochs {} (1 to 1000) and eval_every {} (at least 1) are out of range", self.batch, self.epochs, self.eval_every);
        }
        Ok(())
    }
}

/// One network's step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    /// 1-based.
    pub step: usize,
    pub loss: f64,
    /// ‖∂L/∂x‖ at each block's input (the blocks of [`Experiment::blocks`]).
    pub grad_norms: Vec<Option<f64>>,
    /// ‖F(x)‖/‖x‖ of each residual block (`None` for plain ones).
    pub ratios: Vec<Option<f64>>,
    /// The test split's accuracy after this step, where measured.
    pub test_accuracy: Option<f64>,
    /// The mean training loss of the epoch this step ended.
    pub epoch_loss: Option<f64>,
}

/// A network in the experiment.
pub struct Arm {
    pub spec: NetSpec,
    pub trainer: Trainer,
    pub records: Vec<StepRecord>,
}

pub struct Experiment {
    pub config: ExperimentConfig,
    /// Residual first, then plain.
    pub arms: [Arm; 2],
    /// The residual and plain blocks, in order (the heatmaps' rows).
    pub blocks: Vec<String>,
    test_x: Vec<f32>,
    test_y: Vec<usize>,
    steps: usize,
}

impl Experiment {
    /// Builds both networks and hands them the training split; `gpu`: train on its kernels.
    pub async fn new(config: ExperimentConfig, data: &Dataset, gpu: Option<Rc<Gpu>>) -> Result<Experiment> {
        // The dataset says how many classes the networks tell apart.
        let mut config = config;
        config.net.classes = data.classes;
        config.check()?;
        let train = config.train_examples.unwrap_or(data.train).min(data.train);
        if train < config.batch {
            bail!(BadInput, "{train} training examples do not make one batch of {}", config.batch);
        }
        let c = config.net.channels;
        let x = data.inputs(0..train, c)?;
        let y = data.classes_of(0..train);
        let mut arms = Vec::new();
        for residual in [true, false] {
            let spec = NetSpec { residual, ..config.net.clone() };
            let weights = spec.weights()?;
            // Without normalisation the batchnorms are γ·x + β: frozen mode keeps them so.
            let bn = if spec.batchnorm { BnMode::Batch } else { BnMode::Frozen };
            let tc = TrainConfig { bn, train: Trainable::All };
            let (h, w) = (data.height, data.width);
            let mut trainer = match &gpu {
                Some(g) => Trainer::new_gpu(g.clone(), weights, h, w, tc)?,
                None => Trainer::new(weights, h, w, tc)?,
            };
            trainer.add(&x, &y).await?;
            let optim = OptimConfig { weight_decay: config.weight_decay, schedule: Schedule::Constant, ..OptimConfig::new(OptimizerKind::Sgd, config.lr) };
            trainer.begin(optim, FitConfig { epochs: config.epochs, batch: config.batch, val_fraction: 0.0, seed: config.seed })?;
            arms.push(Arm { spec, trainer, records: Vec::new() });
        }
        let blocks = arms[0].trainer.plan_blocks();
        let steps = train.div_ceil(config.batch) * config.epochs;
        let test_x = data.inputs(data.train..data.len(), c)?;
        let test_y = data.classes_of(data.train..data.len());
        let (Some(plain), Some(residual)) = (arms.pop(), arms.pop()) else { unreachable!("two networks were built") };
        let arms = [residual, plain];
        Ok(Experiment { config, arms, blocks, test_x, test_y, steps })
    }

    /// Steps in the whole run (per network).
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Steps taken (per network).
    pub fn done(&self) -> usize {
        self.arms[0].records.len()
    }

    /// The test split's accuracy of network `arm` (0 residual, 1 plain) now.
    pub async fn test_accuracy(&mut self, arm: usize) -> Result<f64> {
        let batch = self.config.batch;
        let p = self.arms[arm].trainer.predict(&self.test_x, batch).await?;
        Ok(p.iter().zip(&self.test_y).filter(|(a, b)| a == b).count() as f64 / self.test_y.len() as f64)
    }

    /// One step of both networks; `None` once the run is over.
    pub async fn step(&mut self) -> Result<Option<[StepRecord; 2]>> {
        if self.done() >= self.steps {
            return Ok(None);
        }
        // Both records are kept together, once both networks have stepped.
        let mut out = Vec::new();
        for a in 0..2 {
            let arm = &mut self.arms[a];
            let Some(report) = arm.trainer.step().await? else { bail!("network {} ended its run early", arm.spec.name()) };
            let norms = arm.trainer.gradient_norms();
            let mut grad_norms = Vec::new();
            let mut ratios = Vec::new();
            for name in &self.blocks {
                let b = norms.iter().find(|b| &b.name == name);
                grad_norms.push(b.and_then(|b| b.input));
                ratios.push(b.and_then(|b| b.residual).map(|(f, x)| if x > 0.0 { f / x } else { 0.0 }));
            }
            let step = report.step;
            let test_accuracy = if step % self.config.eval_every == 0 || step == self.steps { Some(self.test_accuracy(a).await?) } else { None };
            out.push(StepRecord { step, loss: report.loss, grad_norms, ratios, test_accuracy, epoch_loss: report.epoch.map(|e| e.loss) });
        }
        for (arm, r) in self.arms.iter_mut().zip(&out) {
            arm.records.push(r.clone());
        }
        Ok(Some([out[0].clone(), out[1].clone()]))
    }
}

impl StepRecord {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "step": self.step, "loss": self.loss, "gradNorms": self.grad_norms, "ratios": self.ratios,
            "testAccuracy": self.test_accuracy, "epochLoss": self.epoch_loss,
        })
    }
}

impl Trainer {
    /// The residual and plain blocks of the trainer's plan, in order.
    pub fn plan_blocks(&self) -> Vec<String> {
        self.plan().blocks.iter().filter(|b| matches!(b.role, BlockRole::Identity | BlockRole::Convolutional | BlockRole::Plain)).map(|b| b.name.clone()).collect()
    }
}
