//! Weight loading and bad input: every malformed file gets a clear error
//! naming what is wrong, with no panic and no allocation on a header's word;
//! the CLI turns each into a message on stderr and a non-zero exit.

mod common;

use std::process::Command;
use std::rc::Rc;

use common::{ctx, Rng};
use resnet::model::BlockKind;
use resnet::{Device, Engine, EngineConfig, Gpu, Mode, Preprocess, Weights};
use safetensors::Dtype;

type Raw = resnet::demo::RawTensor;

fn f32s(name: &str, shape: &[usize], data: Vec<f32>) -> Raw {
    (name.to_string(), Dtype::F32, shape.to_vec(), bytemuck::cast_slice(&data).to_vec())
}

/// A small torchvision-named ResNet with basic blocks: widths 8, 8, 16, 16, 24, 10 classes.
fn tiny_torchvision() -> Vec<Raw> {
    resnet::demo::tensors(&resnet::demo::DemoSpec { seed: 42, stem: 8, stages: vec![(8, 2), (16, 2), (16, 1), (24, 1)], classes: 10 })
}

fn serialize(tensors: &[Raw]) -> Vec<u8> {
    resnet::demo::serialize(tensors)
}

fn load_err(bytes: &[u8]) -> String {
    match Weights::from_safetensors(bytes) {
        Ok(_) => panic!("loaded bad weights"),
        Err(e) => e.to_string(),
    }
}

fn with(tensors: &[Raw], name: &str, f: impl Fn(&mut Raw)) -> Vec<u8> {
    let mut t = tensors.to_vec();
    f(t.iter_mut().find(|r| r.0 == name).unwrap());
    serialize(&t)
}

#[test]
fn infers_the_architecture_from_names_and_shapes() {
    let w = Weights::from_safetensors(&serialize(&tiny_torchvision())).unwrap();
    let m = &w.model;
    assert_eq!(m.description, "ResNet-14 (basic blocks, v1.5)");
    assert_eq!(m.blocks.len(), 6);
    assert_eq!(m.blocks.iter().map(|b| b.kind).collect::<Vec<_>>(), [
        BlockKind::Identity,
        BlockKind::Identity,
        BlockKind::Convolutional,
        BlockKind::Identity,
        BlockKind::Convolutional,
        BlockKind::Convolutional
    ]);
    assert_eq!(m.blocks[2].main[0].conv.stride, 2);
    assert_eq!(m.head.classes, 10);
    assert!(w.unused.is_empty(), "{:?}", w.unused);
    let shapes = m.block_shapes(97, 131).unwrap();
    assert_eq!(shapes[0].1, resnet::Shape::new(8, 25, 33));
    assert_eq!(shapes.last().unwrap().1, resnet::Shape::new(24, 4, 5));
}

#[test]
fn half_precision_weights_are_widened() {
    let t: Vec<Raw> = tiny_torchvision()
        .into_iter()
        .map(|(n, d, s, b)| {
            if d != Dtype::F32 {
                return (n, d, s, b);
            }
            let h: Vec<u8> = b.chunks_exact(4).flat_map(|c| half::f16::from_f32(f32::from_le_bytes(c.try_into().unwrap())).to_le_bytes()).collect();
            (n, Dtype::F16, s, h)
        })
        .collect();
    let w = Weights::from_safetensors(&serialize(&t)).unwrap();
    let orig = Weights::from_safetensors(&serialize(&tiny_torchvision())).unwrap();
    let (a, b) = (&w.convs["conv1"].weight, &orig.convs["conv1"].weight);
    assert!(a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-3 * y.abs().max(1e-2)));
}

#[test]
fn bad_files_give_clear_errors() {
    let good = serialize(&tiny_torchvision());
    let t = tiny_torchvision();
    assert!(load_err(&[]).contains("empty"));
    assert!(load_err(&good[..good.len() / 2]).contains("not a valid safetensors file"), "{}", load_err(&good[..good.len() / 2]));
    assert!(load_err(&good[..5]).contains("too short"));

    // A header length of a petabyte: refused before any allocation.
    let mut huge = good.clone();
    huge[..8].copy_from_slice(&(1u64 << 50).to_le_bytes());
    assert!(load_err(&huge).contains("claims 1125899906842624 bytes"));

    // Garbage where the JSON header should be.
    let mut garbled = good.clone();
    garbled[8..40].fill(b'#');
    assert!(load_err(&garbled).contains("not a valid safetensors file"));

    // A header that is JSON but declares a tensor far beyond the data.
    let header = br#"{"conv1.weight":{"dtype":"F32","shape":[1000000000,1000000],"data_offsets":[0,4000000000000000]}}"#;
    let mut lying = (header.len() as u64).to_le_bytes().to_vec();
    lying.extend_from_slice(header);
    lying.extend_from_slice(&[0; 16]);
    assert!(load_err(&lying).contains("not a valid safetensors file"));

    let e = load_err(&with(&t, "layer2.0.conv1.weight", |r| {
        r.1 = Dtype::I32;
    }));
    assert!(e.contains("`layer2.0.conv1.weight` has dtype I32"), "{e}");

    let missing: Vec<Raw> = t.iter().filter(|r| r.0 != "layer2.0.bn1.running_var").cloned().collect();
    assert_eq!(load_err(&serialize(&missing)), "missing tensor `layer2.0.bn1.running_var`");

    let missing_ds: Vec<Raw> = t.iter().filter(|r| !r.0.starts_with("layer3.0.downsample.0")).cloned().collect();
    assert_eq!(load_err(&serialize(&missing_ds)), "missing tensor `layer3.0.downsample.0.weight`");

    let e = load_err(&with(&t, "layer1.1.conv2.weight", |r| {
        r.2 = vec![8, 3, 3, 3];
        r.3.truncate(8 * 3 * 9 * 4);
    }));
    assert!(e.contains("`layer1.1.conv2.weight` has shape [8, 3, 3, 3], expected [*, 8, *, *]"), "{e}");

    let e = load_err(&with(&t, "fc.bias", |r| {
        r.2 = vec![9];
        r.3.truncate(36);
    }));
    assert!(e.contains("`fc.bias` has shape [9], expected [10]"), "{e}");

    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let e = load_err(&with(&t, "layer3.0.conv2.weight", |r| r.3[40..44].copy_from_slice(&bad.to_le_bytes())));
        assert!(e.contains("`layer3.0.conv2.weight` contains NaN or infinite values (first at element 10"), "{e}");
    }

    let e = load_err(&with(&t, "bn1.running_var", |r| r.3[..4].copy_from_slice(&(-1.0f32).to_le_bytes())));
    assert!(e.contains("negative variance"), "{e}");

    // Finite values that fold to infinity: γ near f32's limit over a zero variance.
    let mut huge_bn = t.clone();
    for r in huge_bn.iter_mut() {
        match r.0.as_str() {
            "layer2.1.bn2.weight" => r.3[..4].copy_from_slice(&3e38f32.to_le_bytes()),
            "layer2.1.bn2.running_var" => r.3[..4].copy_from_slice(&0f32.to_le_bytes()),
            _ => {}
        }
    }
    let e = load_err(&serialize(&huge_bn));
    assert!(e.contains("batchnorm `layer2.1.bn2` scales conv `layer2.1.conv2` beyond f32's range"), "{e}");

    let other = serialize(&[f32s("encoder.weight", &[2, 2], vec![1.0; 4])]);
    assert!(load_err(&other).contains("not ResNet weights"));
}

/// ResNets this engine does not run are refused with a sentence naming
/// what they are, never run with the parts it does not know left out.
#[test]
fn unsupported_variants_are_named_not_run_wrong() {
    let t = tiny_torchvision();
    let plus = |extra: Vec<Raw>| serialize(&t.iter().cloned().chain(extra).collect::<Vec<_>>());

    // Squeeze-and-excitation gates inside a block: computing the block without them is wrong.
    let se = plus(vec![f32s("layer1.0.se.fc1.weight", &[2, 8, 1, 1], vec![0.1; 16]), f32s("layer1.0.se.fc1.bias", &[2], vec![0.0; 2])]);
    let e = load_err(&se);
    assert!(e.contains("`layer1.0.se.fc1.bias` belongs to `layer1.0`") && e.contains("squeeze-and-excitation") && e.contains("(2 such"), "{e}");
    // A tensor outside every layer the engine reads stays a warning.
    let w = Weights::from_safetensors(&plus(vec![f32s("aux_head.weight", &[2, 2], vec![1.0; 4])])).unwrap();
    assert_eq!(w.unused, ["aux_head.weight"]);

    // A grouped 3×3 conv (ResNeXt): [out, in/groups, 3, 3].
    let e = load_err(&with(&t, "layer1.1.conv2.weight", |r| {
        r.2 = vec![8, 4, 3, 3];
        r.3.truncate(8 * 4 * 9 * 4);
    }));
    assert!(e.contains("`layer1.1.conv2` is a grouped convolution (2 groups"), "{e}");

    // A one-channel (grayscale) stem is a shape error, not "3 groups".
    let e = load_err(&with(&t, "conv1.weight", |r| {
        r.2 = vec![8, 1, 7, 7];
        r.3.truncate(8 * 49 * 4);
    }));
    assert!(e.contains("`conv1.weight` has shape [8, 1, 7, 7], expected [*, 3, *, *]"), "{e}");

    // A CIFAR-style 3×3 stem.
    let e = load_err(&with(&t, "conv1.weight", |r| {
        r.2 = vec![8, 3, 3, 3];
        r.3.truncate(8 * 3 * 9 * 4);
    }));
    assert!(e.contains("the stem conv `conv1` is 3×3"), "{e}");

    // timm's deep stem (conv1.0, conv1.1, … instead of conv1).
    let deep: Vec<Raw> = t.iter().cloned().map(|mut r| {
        if r.0 == "conv1.weight" {
            r.0 = "conv1.0.weight".into();
        }
        r
    }).collect();
    let e = load_err(&serialize(&deep));
    assert!(e.contains("deep stem"), "{e}");

    // Other ResNet naming schemes are named as such.
    let hf = serialize(&[f32s("resnet.embedder.embedder.convolution.weight", &[2, 3, 7, 7], vec![0.0; 294])]);
    assert!(load_err(&hf).contains("Hugging Face transformers"), "{}", load_err(&hf));
    let keras = serialize(&[f32s("conv1_conv.kernel", &[7, 7, 3, 2], vec![0.0; 294])]);
    assert!(load_err(&keras).contains("tf.keras.applications"), "{}", load_err(&keras));
}

#[test]
fn input_smaller_than_the_network_allows_is_refused() {
    let w = Weights::from_safetensors(&serialize(&tiny_torchvision())).unwrap();
    for (h, wd) in [(31, 64), (64, 16), (0, 0)] {
        let e = w.model.block_shapes(h, wd).unwrap_err().to_string();
        assert!(e.contains("smaller than the network allows"), "{e}");
    }
}

#[test]
fn fast_and_inspect_agree_and_images_run() {
    let cx = ctx();
    let _ = cx; // make sure a GPU is there before building engines on our own device
    let w = Weights::from_safetensors(&serialize(&tiny_torchvision())).unwrap();
    let gpu = Device::Gpu(Rc::new(pollster::block_on(Gpu::new()).unwrap()));
    let (h, wd) = (45, 38);
    let input = Rng::new(9).vec(3 * h * wd);
    let mut outs = Vec::new();
    for mode in [Mode::Fast, Mode::Inspect] {
        let mut e = pollster::block_on(Engine::new(&gpu, &w, EngineConfig::mode(mode), h, wd)).unwrap();
        e.run_tensor(&input).unwrap();
        let out = pollster::block_on(e.output()).unwrap().clone();
        let sum: f32 = out.probs.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5);
        let names: Vec<String> = e.blocks().iter().map(|b| b.name.clone()).collect();
        let blocks: Vec<Vec<f32>> = names.iter().map(|n| pollster::block_on(e.read(n)).unwrap().1).collect();
        outs.push((out, blocks));
        // A wrongly sized input is an error, not a crash.
        assert!(e.run_tensor(&input[1..]).unwrap_err().to_string().contains("values"));
        // Re-planning for another size keeps working.
        pollster::block_on(e.set_input_size(64, 64)).unwrap();
        let rgba: Vec<u8> = (0..80 * 50 * 4).map(|i| (i * 7 % 251) as u8).collect();
        e.run_rgba(&rgba, 80, 50, &Preprocess::imagenet(64, 64)).unwrap();
        let o = pollster::block_on(e.output()).unwrap().clone();
        assert!(o.logits.iter().all(|v| v.is_finite()));
    }
    let (fast, inspect) = (&outs[0], &outs[1]);
    common::assert_close("logits", &fast.0.logits, &inspect.0.logits, 1e-4, 1e-5);
    for (a, b) in fast.1.iter().zip(&inspect.1) {
        common::assert_close("block", a, b, 1e-4, 1e-5);
    }
}

fn cli(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_resnet")).args(args).env("XDG_RUNTIME_DIR", std::env::temp_dir()).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn cli_reports_bad_input_on_stderr_without_panicking() {
    let dir = std::env::temp_dir().join(format!("resnet-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = serialize(&tiny_torchvision());
    let mut huge = good.clone();
    huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.safetensors", vec![], "empty"),
        ("truncated.safetensors", good[..good.len() - 100].to_vec(), "not a valid safetensors file"),
        ("huge.safetensors", huge, "claims"),
    ];
    let npy = dir.join("x.npy");
    std::fs::write(&npy, npy_bytes("(1, 3, 40, 40)", &[0.5; 3 * 40 * 40])).unwrap();
    for (name, data, want) in cases {
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        let (ok, err) = cli(&["classify", "--weights", p.to_str().unwrap(), "--tensor", npy.to_str().unwrap()]);
        assert!(!ok && err.contains(want) && !err.contains("panicked"), "{name}: {err}");
    }
    let w = dir.join("good.safetensors");
    std::fs::write(&w, &good).unwrap();
    let (ok, err) = cli(&["classify", "--weights", w.to_str().unwrap(), "--tensor", npy.to_str().unwrap(), "--json"]);
    assert!(ok, "{err}");
    let w = w.to_str().unwrap();
    let run = |args: &[&str]| cli(&[&["classify", "--weights", w][..], args].concat());
    // Input too small, as a tensor and as an image's crop size.
    std::fs::write(dir.join("small.npy"), npy_bytes("(1, 3, 20, 20)", &[0.5; 3 * 20 * 20])).unwrap();
    let (ok, err) = run(&["--tensor", dir.join("small.npy").to_str().unwrap()]);
    assert!(!ok && err.contains("smaller than the network allows"), "{err}");
    let png = dir.join("img.png");
    image::RgbaImage::from_fn(50, 40, |x, y| image::Rgba([x as u8 * 5, y as u8 * 6, 128, 255])).save(&png).unwrap();
    let (ok, err) = run(&["--size", "20", png.to_str().unwrap()]);
    assert!(!ok && err.contains("smaller than the network allows"), "{err}");
    let (ok, err) = run(&["--size", "48", png.to_str().unwrap()]);
    assert!(ok, "{err}");
    // Not an image; a missing file.
    std::fs::write(dir.join("fake.png"), b"\x89PNG\r\n").unwrap();
    let (ok, err) = run(&[dir.join("fake.png").to_str().unwrap()]);
    assert!(!ok && err.contains("cannot decode image") && !err.contains("panicked"), "{err}");
    let (ok, err) = run(&[dir.join("missing.png").to_str().unwrap()]);
    assert!(!ok && err.contains("missing.png"), "{err}");
    // .npy headers: a wrong shape, and one that claims more data than the file has.
    std::fs::write(dir.join("batch.npy"), npy_bytes("(9, 3, 40, 40)", &[0.5; 3 * 40 * 40])).unwrap();
    let (ok, err) = run(&["--tensor", dir.join("batch.npy").to_str().unwrap()]);
    assert!(!ok && err.contains("expected a 1×3×H×W tensor"), "{err}");
    std::fs::write(dir.join("big.npy"), npy_bytes("(1, 3, 99999, 99999)", &[0.5; 16])).unwrap();
    let (ok, err) = run(&["--tensor", dir.join("big.npy").to_str().unwrap()]);
    assert!(!ok && err.contains("more data than the file holds"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_resnet")).args(["bench", "--weights", w, "--size", "40", "--iters", "3"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("median") && text.contains("stage4") && text.contains("per layer"), "{text}");
    // `--layers 0`: no per-layer timing, in the report or the JSON.
    let json = dir.join("bench.json");
    let out = Command::new(env!("CARGO_BIN_EXE_resnet")).args(["bench", "--weights", w, "--size", "40", "--iters", "2", "--layers", "0", "--json", json.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && !text.contains("per layer"), "{text}");
    let figures: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(figures["layers"].as_array().map(Vec::len), Some(0), "{figures}");
    assert!(figures["dispatches_per_frame"].as_u64().is_some_and(|n| n > 0), "{figures}");
    let (ok, err) = cli(&["dump", "--weights", w, "--size", "16", "--out", dir.join("d").to_str().unwrap(), "--tensor", npy.to_str().unwrap()]);
    assert!(ok, "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A float32 `.npy` written by hand: magic, version, padded header, data.
fn npy_bytes(shape: &str, data: &[f32]) -> Vec<u8> {
    let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    let pad = 63 - (10 + header.len()) % 64;
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&((header.len() + pad + 1) as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend(std::iter::repeat_n(b' ', pad));
    bytes.push(b'\n');
    bytes.extend_from_slice(bytemuck::cast_slice(data));
    bytes
}

#[test]
fn cli_refuses_absurd_sizes_and_reads_only_the_header_of_huge_files() {
    let dir = std::env::temp_dir().join(format!("resnet-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let w = dir.join("good.safetensors");
    std::fs::write(&w, serialize(&tiny_torchvision())).unwrap();
    let w = w.to_str().unwrap();
    let png = dir.join("img.png");
    image::RgbaImage::from_fn(50, 40, |x, y| image::Rgba([x as u8, y as u8, 9, 255])).save(&png).unwrap();
    let png = png.to_str().unwrap();
    for (size, want) in [("1099511627776", "at most 4096"), ("4097", "at most 4096"), ("18446744073709551615", "at most 4096"), ("4611686018427387904", "at most 4096")] {
        let (ok, err) = cli(&["classify", "--weights", w, "--size", size, png]);
        assert!(!ok && err.contains(want) && !err.contains("panicked"), "--size {size}: {err}");
    }
    let (ok, err) = cli(&["classify", "--weights", w, "--height", "64", "--width", "5000", png]);
    assert!(!ok && err.contains("64×5000") && err.contains("at most 4096"), "{err}");
    // A 3 GiB file of zeros (sparse: no disk used) is refused from its header at once.
    let zeros = dir.join("zeros.safetensors");
    std::fs::File::create(&zeros).unwrap().set_len(3 << 30).unwrap();
    let t0 = std::time::Instant::now();
    let (ok, err) = cli(&["classify", "--weights", zeros.to_str().unwrap(), png]);
    assert!(!ok && err.contains("does not start with a JSON object"), "{err}");
    assert!(t0.elapsed().as_secs_f64() < 3.0, "rejecting took {:?}", t0.elapsed());
    // .npy errors in plain words: a float64 file, and a shape whose byte count wraps.
    let mut f8 = npy_bytes("(1, 3, 40, 40)", &[0.5; 3 * 40 * 40]);
    let at = f8.windows(3).position(|w| w == b"<f4").unwrap();
    f8[at + 2] = b'8';
    std::fs::write(dir.join("f8.npy"), &f8).unwrap();
    let (ok, err) = cli(&["classify", "--weights", w, "--tensor", dir.join("f8.npy").to_str().unwrap()]);
    assert!(!ok && err.contains("float32") && err.contains("'<f8'") && !err.contains("TypeStr"), "{err}");
    std::fs::write(dir.join("wrap.npy"), npy_bytes("(1, 3, 1537228672809129301, 2)", &[0.5; 16])).unwrap();
    let (ok, err) = cli(&["classify", "--weights", w, "--tensor", dir.join("wrap.npy").to_str().unwrap()]);
    assert!(!ok && err.contains("more data than the file holds") && !err.contains("fill whole buffer"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn cli_without_a_vulkan_driver_runs_on_the_cpu() {
    let dir = std::env::temp_dir().join(format!("resnet-novk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let w = dir.join("good.safetensors");
    std::fs::write(&w, serialize(&tiny_torchvision())).unwrap();
    let npy = dir.join("x.npy");
    std::fs::write(&npy, npy_bytes("(1, 3, 40, 44)", &Rng::new(5).vec(3 * 40 * 44))).unwrap();
    let run = |backend: &str, no_driver: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_resnet"));
        c.args(["classify", "--json", "--backend", backend, "--weights", w.to_str().unwrap(), "--tensor", npy.to_str().unwrap()]).env("XDG_RUNTIME_DIR", std::env::temp_dir());
        if no_driver {
            // No Vulkan driver visible: the loader finds no ICD.
            c.env("VK_DRIVER_FILES", "/nonexistent/icd.json").env("VK_ICD_FILENAMES", "/nonexistent/icd.json");
        }
        let out = c.output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let logits = |stdout: &str| -> Vec<f64> {
        let v: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
        v["logits"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
    };
    let (ok, auto, err) = run("auto", true);
    assert!(ok && err.contains("running on the CPU"), "{err}");
    assert!(auto.contains("\"backend\":\"cpu\""), "{auto}");
    let (ok, cpu, err) = run("cpu", true);
    assert!(ok && !err.contains("running on the CPU"), "{err}");
    let (ok, _, err) = run("gpu", true);
    assert!(!ok && err.contains("no GPU adapter") && !err.contains("panicked"), "{err}");
    // With the driver, the GPU gives the same logits.
    let (ok, gpu, err) = run("auto", false);
    assert!(ok && gpu.contains("\"backend\":\"gpu\""), "{err}");
    for (a, b) in logits(&cpu).iter().zip(logits(&gpu)) {
        assert!((a - b).abs() < 1e-4 * a.abs().max(1.0), "cpu {a} vs gpu {b}");
    }
    assert_eq!(logits(&cpu), logits(&auto));
    std::fs::remove_dir_all(&dir).ok();
}
