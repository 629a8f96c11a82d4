//! Seeded mutation fuzzing of everything that reads untrusted input: the
//! weights parser, the planner and the preprocessing geometry. Each mutated
//! file must load or fail with an error — never panic, never overflow (the
//! crate's release profile keeps overflow checks on), never allocate on a
//! header's word. Files that loaded are planned at awkward and absurd sizes.
//!
//! `FUZZ_SECONDS` bounds the run (default 2; tools/test.sh runs 30 s in the
//! `fuzz` profile, which keeps overflow checks on, and sets
//! `FUZZ_REQUIRE_OVERFLOW_CHECKS`), `FUZZ_SEED` picks the seed;
//! `bash tools/fuzz.sh [SECONDS]` runs it for minutes. The files in `tests/fuzz_corpus/` are replayed first; an input
//! that panics is written to `target/fuzz-findings/` and fails the test.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use resnet::demo::{serialize, tensors, DemoSpec, RawTensor, Rng};
use resnet::{Mode, Plan, Preprocess, Weights};

/// A small Keras-named ResNet (basic blocks, HWIO kernels), from the demo's tensors.
fn keras_seed() -> Vec<u8> {
    let spec = DemoSpec { seed: 3, stem: 8, stages: vec![(8, 1), (12, 2), (8, 1), (16, 1)], classes: 5 };
    let letters = ["a", "b", "c"];
    let rename = |n: &str| -> Option<String> {
        let (layer, param) = n.rsplit_once('.')?;
        let param = match param {
            "weight" if layer.contains("bn") || layer.ends_with("downsample.1") => "gamma",
            "weight" => "kernel",
            "bias" if layer == "fc" => "bias",
            "bias" => "beta",
            "running_mean" => "moving_mean",
            "running_var" => "moving_variance",
            _ => return None,
        };
        let name = match layer {
            "conv1" => "conv1".to_string(),
            "bn1" => "bn_conv1".to_string(),
            "fc" => format!("fc{}", 5),
            _ => {
                let mut parts = layer.split('.');
                let (stage, block, what) = (parts.next()?, parts.next()?, parts.collect::<Vec<_>>().join("."));
                let s: usize = stage.strip_prefix("layer")?.parse::<usize>().ok()? + 1;
                let b = letters[block.parse::<usize>().ok()?];
                let (kind, branch) = match what.as_str() {
                    "conv1" => ("res", "2a"),
                    "bn1" => ("bn", "2a"),
                    "conv2" => ("res", "2b"),
                    "bn2" => ("bn", "2b"),
                    "downsample.0" => ("res", "1"),
                    "downsample.1" => ("bn", "1"),
                    _ => return None,
                };
                format!("{kind}{s}{b}_branch{branch}")
            }
        };
        Some(format!("{name}.{param}"))
    };
    let out: Vec<RawTensor> = tensors(&spec)
        .into_iter()
        .filter_map(|(n, d, s, b)| {
            let name = rename(&n)?;
            if s.len() == 4 {
                // OIHW → HWIO.
                let v: Vec<f32> = bytemuck::pod_collect_to_vec(&b);
                let (o, i, kh, kw) = (s[0], s[1], s[2], s[3]);
                let mut t = vec![0.0f32; v.len()];
                for (idx, x) in v.iter().enumerate() {
                    let (co, r) = (idx / (i * kh * kw), idx % (i * kh * kw));
                    let (ci, r) = (r / (kh * kw), r % (kh * kw));
                    t[(r * i + ci) * o + co] = *x;
                }
                return Some((name, d, vec![kh, kw, i, o], bytemuck::cast_slice(&t).to_vec()));
            }
            if name.starts_with("fc") && name.ends_with(".kernel") {
                let v: Vec<f32> = bytemuck::pod_collect_to_vec(&b);
                let (classes, inf) = (s[0], s[1]);
                let t: Vec<f32> = (0..inf * classes).map(|k| v[(k % classes) * inf + k / classes]).collect();
                return Some((name, d, vec![inf, classes], bytemuck::cast_slice(&t).to_vec()));
            }
            Some((name, d, s, b))
        })
        .collect();
    serialize(&out)
}

fn seeds() -> Vec<Vec<u8>> {
    let mut seeds = vec![
        serialize(&tensors(&DemoSpec { seed: 1, stem: 8, stages: vec![(8, 2), (16, 1), (16, 1), (24, 1)], classes: 7 })),
        keras_seed(),
        // A network from a description: its metadata's JSON is parsed too.
        resnet::network::NetSpec { depth: 8, residual: false, batchnorm: false, ..Default::default() }.weights().unwrap().to_safetensors(),
        // The experiment's dataset format.
        include_bytes!("../data/digits.bin").to_vec(),
    ];
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz_corpus");
    let mut corpus: Vec<_> = std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect()).unwrap_or_default();
    corpus.sort();
    // The corpus is part of the repository: a missing one must not silently shrink the run.
    assert!(corpus.len() >= 5, "tests/fuzz_corpus holds {} files, expected the repository's 5 or more", corpus.len());
    seeds.extend(corpus.iter().map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))));
    seeds
}

/// Numbers that break naive size arithmetic.
const EDGES: [u64; 10] = [0, 1, 2, 255, 65535, 1 << 31, (1 << 32) + 64, (1 << 61) - 1, 1 << 62, u64::MAX];

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut m = seed.to_vec();
    for _ in 0..1 + rng.next_u64() % 4 {
        let at = |rng: &mut Rng, len: usize| (rng.next_u64() as usize) % len.max(1);
        match rng.next_u64() % 9 {
            0 if !m.is_empty() => {
                let i = at(rng, m.len());
                m[i] ^= 1 << (rng.next_u64() % 8);
            }
            1 if !m.is_empty() => {
                let i = at(rng, m.len());
                m[i] = b"\"[]{},:0123456789-eE \x00\xff"[at(rng, 22)];
            }
            2 => m.truncate(at(rng, m.len() + 1)),
            3 if m.len() >= 8 => m[..8].copy_from_slice(&EDGES[at(rng, EDGES.len())].to_le_bytes()),
            4 => {
                // A number in the JSON header replaced by an edge value.
                let claimed = u64::from_le_bytes(m.get(..8).map_or([0; 8], |h| h.try_into().unwrap()));
                let header_end = (claimed.saturating_add(8).min(m.len() as u64)) as usize;
                let digits: Vec<usize> = (8..header_end).filter(|&i| m[i].is_ascii_digit() && !m[i - 1].is_ascii_digit()).collect();
                if let Some(&i) = digits.get(at(rng, digits.len())) {
                    let end = (i..header_end).find(|&j| !m[j].is_ascii_digit()).unwrap_or(header_end);
                    let edge = EDGES[at(rng, EDGES.len())].to_string();
                    let len_change = edge.len() as i64 - (end - i) as i64;
                    m.splice(i..end, edge.bytes());
                    // Keep the header length right half of the time, so the parser gets past it.
                    if rng.next_u64() % 2 == 0 {
                        let n = (header_end as i64 - 8 + len_change) as u64;
                        m[..8].copy_from_slice(&n.to_le_bytes());
                    }
                }
            }
            5 => {
                let i = at(rng, m.len() + 1);
                let junk: Vec<u8> = (0..1 + rng.next_u64() % 16).map(|_| rng.next_u64() as u8).collect();
                m.splice(i..i, junk);
            }
            6 if m.len() > 16 => {
                let (a, b) = (at(rng, m.len()), at(rng, m.len()));
                let (a, b) = (a.min(b), a.max(b));
                let chunk = m[a..b.min(a + 64)].to_vec();
                let i = at(rng, m.len());
                m.splice(i..i, chunk);
            }
            7 if m.len() > 12 => {
                // A 4-byte float in the data set to NaN, infinity or a huge value.
                let i = at(rng, m.len() - 4);
                let v = [f32::NAN, f32::INFINITY, -f32::INFINITY, f32::MAX, -0.0][at(rng, 5)];
                m[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
            _ => {}
        }
    }
    m
}

/// Sizes a caller could ask for.
fn sizes(rng: &mut Rng) -> (usize, usize) {
    let pick = |rng: &mut Rng| match rng.next_u64() % 4 {
        0 => EDGES[(rng.next_u64() % EDGES.len() as u64) as usize] as usize,
        1 => 30 + (rng.next_u64() % 8) as usize,
        2 => 4090 + (rng.next_u64() % 12) as usize,
        _ => (rng.next_u64() % 300) as usize,
    };
    (pick(rng), pick(rng))
}

/// Everything that reads `bytes` or sizes derived from a caller. Err is
/// fine; a panic is a finding.
fn exercise(rng: &mut Rng, bytes: &[u8]) -> usize {
    let mut planned = 0;
    if let Ok(d) = resnet::dataset::Dataset::parse(bytes) {
        let n = d.len().min(3);
        match d.inputs(0..n, 3) {
            Ok(x) => assert_eq!(x.len(), n * 3 * d.height * d.width),
            Err(_) => assert!(d.channels != 1 && d.channels != 3),
        }
    }
    if let Ok(w) = Weights::from_safetensors(bytes) {
        for _ in 0..3 {
            let (h, wd) = sizes(rng);
            let mode = if rng.next_u64() % 2 == 0 { Mode::Fast } else { Mode::Inspect };
            if Plan::new(&w.model, h.min(600), wd.min(600), mode).is_ok() {
                planned += 1;
            }
            // Absurd sizes: refused without planning anything.
            if h > resnet::model::MAX_INPUT_SIDE || wd > resnet::model::MAX_INPUT_SIDE {
                assert!(Plan::new(&w.model, h, wd, mode).is_err());
            }
        }
    }
    let (h, w) = sizes(rng);
    let (sh, sw) = sizes(rng);
    let p = Preprocess::imagenet(h, w);
    if let Ok(g) = p.geometry(sw, sh) {
        assert!(g.crop_x + p.crop_w <= g.resized_w && g.crop_y + p.crop_h <= g.resized_h);
        let _ = p.params(sw, sh);
        let _ = p.source_rect(sw, sh);
    }
    planned
}

thread_local! {
    static LAST_PANIC: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

#[test]
fn mutated_weights_and_sizes_never_panic() {
    let seconds: u64 = std::env::var("FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2);
    // Whether this build traps on integer overflow (the `fuzz` profile does).
    let checks = catch_unwind(|| std::hint::black_box(u8::MAX) + std::hint::black_box(1u8)).is_err();
    if std::env::var_os("FUZZ_REQUIRE_OVERFLOW_CHECKS").is_some() {
        assert!(checks, "this build has no overflow checks: run it with --profile fuzz");
    }
    let seed: u64 = std::env::var("FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(2026);
    let seeds = seeds();
    for s in &seeds[..3] {
        assert!(Weights::from_safetensors(s).is_ok(), "a seed file must load");
    }
    assert!(resnet::dataset::Dataset::parse(&seeds[3]).is_ok(), "the dataset seed must parse");
    let mut rng = Rng::new(seed);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut runs, mut loaded, mut planned, mut findings) = (0u64, 0u64, 0usize, Vec::new());
    // Findings are reported below, with where they panicked.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| LAST_PANIC.with(|l| *l.borrow_mut() = info.to_string())));
    // The corpus as it is, then mutations of every seed, round robin.
    let mut queue: Vec<Vec<u8>> = seeds.clone();
    while Instant::now() < deadline || !queue.is_empty() {
        let input = queue.pop().unwrap_or_else(|| mutate(&mut rng, &seeds[(runs as usize) % seeds.len()]));
        let mut case_rng = Rng::new(rng.next_u64());
        match catch_unwind(AssertUnwindSafe(|| {
            let ok = Weights::from_safetensors(&input).is_ok();
            (ok, exercise(&mut case_rng, &input))
        })) {
            Ok((ok, p)) => {
                loaded += ok as u64;
                planned += p;
            }
            Err(_) => findings.push((input, LAST_PANIC.with(|l| l.borrow().clone()))),
        }
        runs += 1;
    }
    std::panic::set_hook(hook);
    let checks = if checks { "overflow checks on" } else { "overflow checks off" };
    eprintln!("fuzz: {runs} inputs in {seconds} s (seed {seed}, {checks}): {loaded} loaded, {planned} plans made, {} findings", findings.len());
    if !findings.is_empty() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/target/fuzz-findings");
        std::fs::create_dir_all(dir).unwrap();
        for (i, (input, _)) in findings.iter().enumerate() {
            std::fs::write(format!("{dir}/finding-{i}.safetensors"), input).unwrap();
        }
        panic!("{} inputs panicked (saved in {dir}), first: {}", findings.len(), findings[0].1);
    }
    assert!(loaded > 0 && planned > 0, "the fuzzer must reach the planner");
    assert!(runs as f64 > 100.0 * seconds.max(1) as f64, "only {runs} inputs in {seconds} s");
}

#[test]
fn crafted_headers_are_refused_without_overflow() {
    // 8 U8 tensors of 2^61−1 elements each: the offsets' sum overflows u64.
    let n = (1u64 << 61) - 1;
    let mut header = String::from("{");
    for i in 0..8 {
        let (a, b) = (i * n, (i + 1) * n);
        header += &format!("\"t{i}\":{{\"dtype\":\"U8\",\"shape\":[{n}],\"data_offsets\":[{a},{b}]}},");
    }
    header.pop();
    header.push('}');
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header.as_bytes());
    file.extend_from_slice(&[0; 64]);
    let e = Weights::from_safetensors(&file).unwrap_err();
    assert!(e.to_string().contains("not a valid safetensors file"), "{e}");
    // A shape whose product overflows.
    let header = r#"{"conv1.weight":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,16]}}"#;
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header.as_bytes());
    file.extend_from_slice(&[0; 16]);
    let e = Weights::from_safetensors(&file).unwrap_err().to_string();
    assert!(e.contains("overflows"), "{e}");
}

#[test]
fn keras_names_load_and_a_second_dense_layer_is_refused() {
    let seed = keras_seed();
    let w = Weights::from_safetensors(&seed).unwrap();
    assert_eq!(w.model.classes(), 5);
    // The same file with another `fc<digits>` layer: which one is the head
    // would depend on hash order, so the file is refused.
    let st = safetensors::SafeTensors::deserialize(&seed).unwrap();
    let mut raw: Vec<RawTensor> = st.tensors().into_iter().map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec())).collect();
    let fc = raw.iter().find(|r| r.0 == "fc5.kernel").unwrap().clone();
    raw.push(("fc6.kernel".to_string(), fc.1, fc.2, fc.3));
    let e = Weights::from_safetensors(&serialize(&raw)).unwrap_err().to_string();
    assert!(e.contains("more than one dense layer (`fc5`, `fc6`)"), "{e}");
}
