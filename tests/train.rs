//! The trainer's bookkeeping on the demo network (the numbers themselves are
//! checked against JAX in tests/test_training.py): examples added and
//! removed, the memory limit, every class needing an example where asked,
//! a lone last example refused up front under batch statistics, a run that
//! ends, per-block gradient norms, and a saved file that loads back with its
//! class names. And the same run on the GPU's kernels (lavapipe here) and
//! on the CPU backend ending in the same weights.

use std::rc::Rc;

use pollster::block_on;
use resnet::demo::{self, DemoSpec, Rng};
use resnet::train::{BnMode, FitConfig, OptimConfig, OptimizerKind, TrainConfig, Trainable, Trainer};
use resnet::{ErrorKind, Weights};

fn trainer(train: Trainable, bn: BnMode) -> Trainer {
    let mut w = Weights::from_safetensors(&demo::weights(&DemoSpec::default())).unwrap();
    resnet::train::fit::new_head(&mut w, vec!["a".into(), "b".into(), "c".into()], 1);
    Trainer::new(w, 32, 32, TrainConfig { bn, train }).unwrap()
}

#[test]
fn examples_limits_and_a_run() {
    let mut t = trainer(Trainable::Head, BnMode::Frozen);
    let mut rng = Rng::new(3);
    for i in 0..5 {
        block_on(t.add(&rng.vec(3 * 32 * 32), &[i % 2])).unwrap();
    }
    assert_eq!(t.len(), 5);
    assert_eq!(t.counts(), vec![3, 2, 0]);
    // Class `c` has no example: refused where asked (the package asks), with its name.
    let e = t.check_every_class().unwrap_err();
    assert!(e.message().contains("class `c`"), "{e}");
    block_on(t.add(&rng.vec(3 * 32 * 32), &[2])).unwrap();
    t.check_every_class().unwrap();
    // Bad examples: a class out of range, a wrong size, an index past the end.
    assert_eq!(block_on(t.add(&rng.vec(3 * 32 * 32), &[3])).unwrap_err().kind(), ErrorKind::BadInput);
    assert_eq!(block_on(t.add(&rng.vec(10), &[0])).unwrap_err().kind(), ErrorKind::BadInput);
    assert_eq!(t.remove(6).unwrap_err().kind(), ErrorKind::BadInput);
    t.remove(0).unwrap();
    assert_eq!(t.counts(), vec![2, 2, 1]);
    // A run of 3 epochs of batch 2 over 5 examples: 9 steps, an epoch report every third.
    t.begin(OptimConfig::new(OptimizerKind::AdamW, 0.01), FitConfig { epochs: 3, batch: 2, val_fraction: 0.0, seed: 1 }).unwrap();
    let mut steps = Vec::new();
    while let Some(r) = block_on(t.step()).unwrap() {
        steps.push((r.step, r.steps, r.epoch.is_some()));
    }
    assert_eq!(steps.len(), 9);
    assert!(steps.iter().all(|s| s.1 == 9));
    assert_eq!(steps.iter().filter(|s| s.2).count(), 3);
    assert!(block_on(t.step()).unwrap().is_none(), "a run that ended stays ended");
    // Head training: only the head has weight gradients; the gradient reaches the head's input only.
    let norms = t.gradient_norms();
    let with_weights: Vec<&str> = norms.iter().filter(|n| n.weights.is_some()).map(|n| n.name.as_str()).collect();
    assert_eq!(with_weights, ["pool"]);
    assert!(norms.iter().all(|n| n.input.is_none()), "the dense layer's input is the frozen part's output: no gradient is taken there");
    // The saved file loads back with its class names.
    let back = Weights::from_safetensors(&t.weights.to_safetensors()).unwrap();
    assert_eq!(back.labels.as_deref(), Some(&["a".to_string(), "b".into(), "c".into()][..]));
    assert_eq!(back.model.classes(), 3);
}

#[test]
fn the_memory_limit_and_batch_statistics_are_checked_up_front() {
    let mut t = trainer(Trainable::All, BnMode::Batch);
    t.set_memory_limit(50 << 10);
    let mut rng = Rng::new(4);
    // 12 KB an example: the fifth is over 50 KB.
    for i in 0..4 {
        block_on(t.add(&rng.vec(3 * 32 * 32), &[i % 3])).unwrap();
    }
    let e = block_on(t.add(&rng.vec(3 * 32 * 32), &[0])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InputTooLarge, "{e}");
    assert_eq!(t.len(), 4, "a refused example is not kept");
    // The training tensors of a batch do not fit in 50 KB either.
    let e = t.begin(OptimConfig::new(OptimizerKind::Sgd, 0.01), FitConfig { epochs: 1, batch: 2, val_fraction: 0.0, seed: 0 }).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InputTooLarge, "{e}");
    t.set_memory_limit(u64::MAX);
    // At 32×32 the last stage is 1×1: batches of 3 over 4 examples leave one alone.
    let e = t.begin(OptimConfig::new(OptimizerKind::Sgd, 0.01), FitConfig { epochs: 1, batch: 3, val_fraction: 0.0, seed: 0 }).unwrap_err();
    assert!(e.message().contains("more than one value per channel"), "{e}");
    t.begin(OptimConfig::new(OptimizerKind::Sgd, 0.01), FitConfig { epochs: 1, batch: 2, val_fraction: 0.0, seed: 0 }).unwrap();
    assert_eq!(block_on(t.step()).unwrap().unwrap().steps, 2);
}

/// Two epochs of the whole demo network, batch statistics, SGD with
/// momentum, a held-out share: the GPU's kernels and the CPU backend end in
/// the same weights (running statistics included), losses and gradient
/// norms, within float32's reordering of sums.
#[test]
fn gpu_and_cpu_trainers_agree() {
    let gpu = Rc::new(block_on(resnet::Gpu::new()).expect("a GPU adapter (lavapipe: apt install mesa-vulkan-drivers)"));
    let mut w = Weights::from_safetensors(&demo::weights(&DemoSpec::default())).unwrap();
    resnet::train::fit::new_head(&mut w, vec!["a".into(), "b".into()], 1);
    let config = TrainConfig { bn: BnMode::Batch, train: Trainable::All };
    let mut cpu = Trainer::new(w.clone(), 40, 36, config).unwrap();
    let mut gpu = Trainer::new_gpu(gpu, w.clone(), 40, 36, config).unwrap();
    assert!(gpu.on_gpu() && !cpu.on_gpu());
    let mut rng = Rng::new(9);
    let x = rng.vec(7 * 3 * 40 * 36);
    let labels = [0, 1, 0, 1, 1, 0, 1];
    let mut losses = [Vec::new(), Vec::new()];
    for (t, l) in [&mut cpu, &mut gpu].into_iter().zip(&mut losses) {
        block_on(t.add(&x, &labels)).unwrap();
        let mut optim = OptimConfig::new(OptimizerKind::Sgd, 0.01);
        optim.momentum = 0.9;
        t.begin(optim, FitConfig { epochs: 2, batch: 3, val_fraction: 0.2, seed: 5 }).unwrap();
        while let Some(r) = block_on(t.step()).unwrap() {
            l.push(r.loss);
            if let Some(e) = r.epoch {
                l.push(e.val_accuracy.unwrap());
            }
        }
    }
    assert_eq!(losses[0].len(), 6, "2 epochs of 2 steps, and their validation accuracies");
    for (a, b) in losses[0].iter().zip(&losses[1]) {
        assert!((a - b).abs() <= 1e-4 * a.abs().max(1.0), "losses {:?} against {:?}", losses[0], losses[1]);
    }
    let (a, b) = (&cpu.weights, &gpu.weights);
    let close = |name: &str, x: &[f32], y: &[f32]| {
        let scale = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = x.iter().zip(y).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
        assert!(worst <= 1e-4 * scale + 1e-6, "{name}: off by {worst} (largest {scale})");
    };
    for (name, p) in &a.convs {
        close(name, &p.weight, &b.convs[name].weight);
    }
    for (name, p) in &a.bns {
        close(name, &p.gamma, &b.bns[name].gamma);
        close(name, &p.beta, &b.bns[name].beta);
        close(name, &p.mean, &b.bns[name].mean);
        close(name, &p.var, &b.bns[name].var);
    }
    close("dense", &a.dense.weight, &b.dense.weight);
    for (p, q) in cpu.gradient_norms().iter().zip(gpu.gradient_norms()) {
        assert_eq!(p.name, q.name);
        for (u, v) in [(p.weights, q.weights), (p.input, q.input)] {
            assert_eq!(u.is_some(), v.is_some(), "{}", p.name);
            if let (Some(u), Some(v)) = (u, v) {
                assert!((u - v).abs() <= 1e-3 * u.abs() + 1e-9, "{}: {u} against {v}", p.name);
            }
        }
    }
}
