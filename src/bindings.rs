//! The browser bindings (wasm-bindgen). `js/index.js` wraps them into the
//! public `ResNet` class: it turns frames into RGBA pixels, downloads and
//! caches weights, serialises calls and adds class names.
//!
//! Every fallible call rejects with a JS `Error` named `ResNetError` whose
//! `code` is the engine's [`crate::ErrorKind::code`] (`BAD_WEIGHTS`,
//! `DEVICE_LOST`, …). The engine sits in a `RefCell`: async methods hold the
//! borrow across their awaits, and a second async call arriving meanwhile
//! gets a `BUSY` error instead of a panic (the JS wrapper queues them, so it
//! never happens there). The synchronous calls (block list, last frame's
//! statistics, block switches) never touch that borrow: they read copies
//! kept beside it, and block switches are applied at the next frame.

// Holding the borrow across awaits is the point: see the module comment.
#![allow(clippy::await_holding_refcell_ref)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use js_sys::{Array, Float32Array, Object, Reflect};
use wasm_bindgen::prelude::*;

use crate::demo::{self, DemoSpec};
use crate::plan::BlockRole;
use crate::{BackendKind, BlockStats, Device, Engine, EngineConfig, Error, ErrorKind, Gpu, Mode, Precision, Preprocess, Weights};

/// A JS `Error` named `ResNetError` with the kind's stable `code`.
fn js_error(code: &str, message: &str) -> JsValue {
    let e = js_sys::Error::new(message);
    e.set_name("ResNetError");
    let _ = Reflect::set(&e, &"code".into(), &code.into());
    e.into()
}

fn err(e: Error) -> JsValue {
    js_error(e.kind().code(), e.message())
}

/// The largest frame `pixel_view` takes: 4096×4096 RGBA (js/frames.js scales larger ones down).
const MAX_PIXEL_BYTES: usize = 4096 * 4096 * 4;

fn busy() -> JsValue {
    js_error("BUSY", "the model is busy with another call (await each call before the next)")
}

fn obj(fields: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in fields {
        let _ = Reflect::set(&o, &JsValue::from_str(k), v);
    }
    o.into()
}

fn shape_array(c: usize, h: usize, w: usize) -> JsValue {
    Array::of3(&(c as u32).into(), &(h as u32).into(), &(w as u32).into()).into()
}

/// Seeded, untrained demo weights (ResNet-18 layout at a quarter of its
/// width, 1000 classes) as `.safetensors` bytes.
#[wasm_bindgen(js_name = demoWeights)]
pub fn demo_weights() -> Vec<u8> {
    demo::weights(&DemoSpec::default())
}

/// The part of a `width`×`height` frame that preprocessing for an
/// `in_h`×`in_w` input reads (the view and its filter's reach):
/// `[x, y, width, height]`, what a large frame is handed over as, in strips.
#[wasm_bindgen(js_name = frameRect)]
pub fn frame_rect(width: u32, height: u32, in_h: u32, in_w: u32) -> Result<Vec<u32>, JsValue> {
    let p = Preprocess::imagenet(in_h as usize, in_w as usize).params(width as usize, height as usize).map_err(err)?;
    Ok(crate::engine::cpu::preprocess::Strips::rect_of(&p).iter().map(|&v| v as u32).collect())
}

/// Where JS hands frames over, for a model or a trainer: RGBA8 pixels
/// written through `pixel_view` (kept from frame to frame: it only grows, so
/// frames allocate nothing), and a large frame arriving in strips (see
/// `frameRect`), whose resize and input are kept from frame to frame too.
#[derive(Default)]
struct Inbox {
    pixels: RefCell<Vec<u8>>,
    strips: RefCell<Option<crate::engine::cpu::preprocess::Strips>>,
    /// A frame is being handed over in strips.
    open: std::cell::Cell<bool>,
    /// The network input the last strips gave.
    input: RefCell<Vec<f32>>,
}

impl Inbox {
    /// A view of `len` bytes of wasm memory for the next frame's pixels (or
    /// strip): fill it at once (any allocation in wasm may move it).
    fn view(&self, len: u32) -> Result<js_sys::Uint8Array, JsValue> {
        let mut px = self.pixels.try_borrow_mut().map_err(|_| busy())?;
        let len = len as usize;
        // The package hands larger frames over in strips; a larger length
        // would grow wasm memory for good (or abort on failure).
        if len > MAX_PIXEL_BYTES {
            return Err(js_error("INPUT_TOO_LARGE", &format!("{len} bytes of pixels: at most {MAX_PIXEL_BYTES} (4096×4096 RGBA) are taken; scale the frame down")));
        }
        if px.len() < len {
            let more = len - px.len();
            px.try_reserve_exact(more).map_err(|_| js_error("INPUT_TOO_LARGE", "no memory left for the frame's pixels: scale it down"))?;
            px.resize(len, 0);
        }
        // SAFETY: the view is handed to JS, which fills it before any other
        // call into wasm (none can run in between on this thread).
        Ok(unsafe { js_sys::Uint8Array::view(&px[..len]) })
    }

    /// The `width`×`height` RGBA8 pixels written through `view`.
    fn frame(&self, width: u32, height: u32) -> Result<std::cell::Ref<'_, [u8]>, JsValue> {
        let px = self.pixels.borrow();
        let len = (width as usize) * (height as usize) * 4;
        if len > px.len() {
            return Err(js_error("BAD_INPUT", &format!("{width}×{height} pixels need {len} bytes; only {} were written through pixel_view", px.len())));
        }
        Ok(std::cell::Ref::map(px, |p| &p[..len]))
    }

    /// Starts a `width`×`height` frame in strips for an input of `size`;
    /// `rect` is what `frameRect` gave when the frame was captured.
    fn begin_strips(&self, width: u32, height: u32, rect: &[u32], size: (usize, usize)) -> Result<(), JsValue> {
        let p = Preprocess::imagenet(size.0, size.1).params(width as usize, height as usize).map_err(err)?;
        let mut s = self.strips.borrow_mut();
        match s.as_mut() {
            Some(s) => s.restart(&p).map_err(err)?,
            None => *s = Some(crate::engine::cpu::preprocess::Strips::new(&p).map_err(err)?),
        }
        let strips = s.as_ref().expect("made above");
        if strips.rect.iter().zip(rect).any(|(&a, &b)| a as u32 != b) {
            self.open.set(false);
            return Err(js_error("BAD_INPUT", "the frame was captured for another input size: classify it again"));
        }
        self.open.set(true);
        Ok(())
    }

    /// The next rows of the frame in strips, `len` bytes written through `view`.
    fn push_strip(&self, len: u32) -> Result<(), JsValue> {
        let none = || js_error("BAD_INPUT", "no frame is being handed over in strips");
        if !self.open.get() {
            return Err(none());
        }
        let px = self.pixels.borrow();
        let rows = px.get(..len as usize).ok_or_else(|| js_error("BAD_INPUT", "more bytes than were written through pixel_view"))?;
        self.strips.borrow_mut().as_mut().ok_or_else(none)?.push(rows).map_err(err)
    }

    /// The network input of the frame handed over in strips.
    fn strips_input(&self) -> Result<std::cell::Ref<'_, [f32]>, JsValue> {
        if !self.open.replace(false) {
            return Err(js_error("BAD_INPUT", "no frame is being handed over in strips"));
        }
        let s = self.strips.borrow();
        let s = s.as_ref().expect("open strips exist");
        {
            let mut x = self.input.borrow_mut();
            x.resize(s.input_len(), 0.0);
            s.finish(&mut x).map_err(err)?;
        }
        Ok(std::cell::Ref::map(self.input.borrow(), |v| &v[..]))
    }
}

/// What the synchronous calls read, refreshed after each re-plan.
struct Meta {
    info: JsValue,
    /// The planned input size (h, w).
    size: (usize, usize),
    /// (name, stage, role, [C, H, W]) of each block.
    blocks: Vec<(String, usize, BlockRole, [usize; 3])>,
}

impl Meta {
    fn of(e: &Engine) -> Meta {
        let (h, w) = e.input_size();
        let info = obj(&[
            ("description", e.model().description.clone().into()),
            ("classes", (e.model().classes() as u32).into()),
            ("inputSize", Array::of2(&(h as u32).into(), &(w as u32).into()).into()),
            ("mode", e.mode().as_str().into()),
            ("precision", e.precision().as_str().into()),
            ("backend", if e.backend() == BackendKind::Gpu { "webgpu" } else { "cpu" }.into()),
            ("adapter", e.device_name().into()),
            ("timestampQuery", e.gpu().is_some_and(|g| g.features.contains(wgpu::Features::TIMESTAMP_QUERY)).into()),
        ]);
        let plan = e.plan();
        let blocks = plan
            .blocks
            .iter()
            .map(|b| {
                let s = plan.shape(b.tensor);
                (b.name.clone(), b.stage, b.role, [s.c, s.h, s.w])
            })
            .collect();
        Meta { info, size: (h, w), blocks }
    }
}

#[wasm_bindgen]
pub struct WasmResNet {
    engine: RefCell<Engine>,
    meta: RefCell<Meta>,
    stats: RefCell<BlockStats>,
    stage_ms: RefCell<Option<Vec<(String, f64)>>>,
    /// Identity block → enabled, as asked for (what `block_enabled` says).
    enabled: RefCell<HashMap<String, bool>>,
    /// Switches not yet applied to the engine: applied at the next frame,
    /// when the engine is free, so a frame with none does nothing here.
    switches: RefCell<Vec<(String, bool)>>,
    /// Frames as JS hands them over.
    inbox: Inbox,
    /// Class names from the weights file's metadata (trained files carry them).
    labels: Option<Vec<String>>,
}

impl WasmResNet {
    fn block(&self, name: &str) -> Result<(usize, BlockRole), JsValue> {
        let meta = self.meta.borrow();
        let i = meta.blocks.iter().position(|b| b.0 == name).ok_or_else(|| js_error("BAD_INPUT", &format!("no block named `{name}`")))?;
        Ok((i, meta.blocks[i].2))
    }

    /// Applies pending block switches; called with the engine borrowed for a frame.
    fn apply_switches(&self, e: &mut Engine) -> Result<(), JsValue> {
        for (name, on) in self.switches.borrow_mut().drain(..) {
            e.set_block_enabled(&name, on).map_err(err)?;
        }
        Ok(())
    }
}

#[wasm_bindgen]
impl WasmResNet {
    /// Parses `.safetensors` bytes, opens the backend (`webgpu` or `cpu`) and
    /// plans for `height`×`width`.
    pub async fn load(bytes: Vec<u8>, mode: String, height: u32, width: u32, precision: String, stats: bool, backend: String) -> Result<WasmResNet, JsValue> {
        console_error_panic_hook::set_once();
        let mode: Mode = mode.parse().map_err(err)?;
        let precision: Precision = precision.parse().map_err(err)?;
        let weights = Weights::from_safetensors(&bytes).map_err(err)?;
        drop(bytes);
        let labels = weights.labels.clone();
        let device = match backend.as_str() {
            "webgpu" => Device::Gpu(Rc::new(Gpu::new().await.map_err(err)?)),
            "cpu" => Device::Cpu,
            other => return Err(js_error("BAD_INPUT", &format!("unknown backend `{other}`: use 'webgpu' or 'cpu'"))),
        };
        let config = EngineConfig { mode, precision, conv: None, stats, submit: None };
        let engine = Engine::new(&device, &weights, config, height as usize, width as usize).await.map_err(err)?;
        Ok(WasmResNet {
            meta: RefCell::new(Meta::of(&engine)),
            engine: RefCell::new(engine),
            stats: RefCell::new(BlockStats::default()),
            stage_ms: RefCell::new(None),
            enabled: RefCell::new(HashMap::new()),
            switches: RefCell::new(Vec::new()),
            inbox: Inbox::default(),
            labels,
        })
    }

    /// The class names the weights file carries, or null.
    pub fn labels(&self) -> JsValue {
        match &self.labels {
            Some(l) => l.iter().map(|s| JsValue::from_str(s)).collect::<Array>().into(),
            None => JsValue::NULL,
        }
    }

    /// Starts a large `width`×`height` frame handed over in strips: `rect`
    /// is what `frameRect` gave for the planned input size.
    pub fn begin_strips(&self, width: u32, height: u32, rect: Vec<u32>) -> Result<(), JsValue> {
        let size = self.engine.try_borrow().map_err(|_| busy())?.input_size();
        self.inbox.begin_strips(width, height, &rect, size)
    }

    /// The next rows of the frame's rect, `len` bytes written through `pixel_view`.
    pub fn push_strip(&self, len: u32) -> Result<(), JsValue> {
        self.inbox.push_strip(len)
    }

    /// Queues the frame handed over in strips (preprocessed on the CPU, the
    /// same on both backends). Read the result with `output()`.
    pub fn submit_strips(&self) -> Result<(), JsValue> {
        let x = self.inbox.strips_input()?;
        let mut e = self.engine.try_borrow_mut().map_err(|_| busy())?;
        self.apply_switches(&mut e)?;
        e.run_tensor(&x).map_err(err)
    }

    /// `{ description, classes, inputSize: [h, w], mode, precision, backend, adapter, timestampQuery }`.
    pub fn info(&self) -> JsValue {
        self.meta.borrow().info.clone()
    }

    /// The part of a `width`×`height` frame the network sees, in the frame's
    /// pixels: `{ x, y, width, height }` (torchvision's resize and centre crop).
    pub fn crop(&self, width: u32, height: u32) -> Result<JsValue, JsValue> {
        let (h, w) = self.meta.borrow().size;
        let r = Preprocess::imagenet(h, w).source_rect(width as usize, height as usize).map_err(err)?;
        Ok(obj(&[("x", r[0].into()), ("y", r[1].into()), ("width", r[2].into()), ("height", r[3].into())]))
    }

    /// A view of `len` bytes of wasm memory for the next frame's RGBA8
    /// pixels: fill it at once (any allocation in wasm may move it), then
    /// call `submit_pixels`. The memory is reused across frames.
    pub fn pixel_view(&self, len: u32) -> Result<js_sys::Uint8Array, JsValue> {
        self.inbox.view(len)
    }

    /// Queues one frame from the pixels written through `pixel_view`:
    /// `width`×`height` RGBA8, preprocessed on the GPU. Read the result with `output()`.
    pub fn submit_pixels(&self, width: u32, height: u32) -> Result<(), JsValue> {
        let mut e = self.engine.try_borrow_mut().map_err(|_| busy())?;
        self.apply_switches(&mut e)?;
        let (h, w) = e.input_size();
        let px = self.inbox.frame(width, height)?;
        e.run_rgba(&px, width as usize, height as usize, &Preprocess::imagenet(h, w)).map_err(err)
    }

    /// Queues one raw `3×H×W` NCHW tensor at the planned size.
    pub fn submit_tensor(&self, data: &[f32]) -> Result<(), JsValue> {
        let mut e = self.engine.try_borrow_mut().map_err(|_| busy())?;
        self.apply_switches(&mut e)?;
        e.run_tensor(data).map_err(err)
    }

    /// `{ logits: Float32Array, probs: Float32Array }` of the last frame.
    pub async fn output(&self) -> Result<JsValue, JsValue> {
        let mut e = self.engine.try_borrow_mut().map_err(|_| busy())?;
        let out = e.output().await.map_err(err)?;
        let result = obj(&[("logits", Float32Array::from(&out.logits[..]).into()), ("probs", Float32Array::from(&out.probs[..]).into())]);
        // clone_from reuses the vectors of the last frame.
        self.stats.borrow_mut().clone_from(e.block_stats());
        self.stage_ms.borrow_mut().clone_from(&e.stage_times().map(<[_]>::to_vec));
        Ok(result)
    }

    /// Re-plans for another input size (weights stay on the GPU).
    pub async fn set_input_size(&self, height: u32, width: u32) -> Result<(), JsValue> {
        let mut e = self.engine.try_borrow_mut().map_err(|_| busy())?;
        e.set_input_size(height as usize, width as usize).await.map_err(err)?;
        *self.meta.borrow_mut() = Meta::of(&e);
        *self.stats.borrow_mut() = BlockStats::default();
        *self.stage_ms.borrow_mut() = None;
        Ok(())
    }

    /// `[{ name, stage, kind, shape: [C, H, W] }]`: stem, residual blocks, head.
    pub fn blocks(&self) -> Array {
        self.meta
            .borrow()
            .blocks
            .iter()
            .map(|(name, stage, role, [c, h, w])| {
                obj(&[("name", name.clone().into()), ("stage", (*stage as u32).into()), ("kind", role.as_str().into()), ("shape", shape_array(*c, *h, *w))])
            })
            .collect()
    }

    /// `{ shape, data }` of a block (or, in inspect mode, any intermediate)
    /// of the last frame; with `channels`, only those channels are read back.
    pub async fn activation(&self, name: String, channels: Option<Vec<u32>>) -> Result<JsValue, JsValue> {
        let mut e = self.engine.try_borrow_mut().map_err(|_| busy())?;
        let (s, data) = match channels {
            Some(ch) => {
                let ch: Vec<usize> = ch.into_iter().map(|c| c as usize).collect();
                e.read_channels(&name, &ch).await.map_err(err)?
            }
            None => e.read(&name).await.map_err(err)?,
        };
        Ok(obj(&[("shape", shape_array(s.c, s.h, s.w)), ("data", Float32Array::from(&data[..]).into())]))
    }

    /// Per-channel means of a block's output in the last frame (the pooled
    /// vector for the head).
    pub fn channel_means(&self, name: &str) -> Result<Float32Array, JsValue> {
        let (i, _) = self.block(name)?;
        let stats = self.stats.borrow();
        let m = stats.channel_means.get(i).ok_or_else(|| js_error(ErrorKind::NoFrame.code(), "no frame has been classified yet: classify one first"))?;
        Ok(Float32Array::from(&m[..]))
    }

    /// `[{ name, main, shortcut, ratio, skipped }]`: ‖F(x)‖, ‖x‖ and their
    /// ratio per residual block in the last frame (0 for a skipped block).
    pub fn residuals(&self) -> Result<Array, JsValue> {
        let meta = self.meta.borrow();
        let stats = self.stats.borrow();
        if stats.norms.is_empty() {
            return Err(js_error(ErrorKind::NoFrame.code(), "no frame has been classified yet: classify one first"));
        }
        Ok(meta
            .blocks
            .iter()
            .zip(&stats.norms)
            .enumerate()
            .filter_map(|(i, (b, n))| n.map(|(m, s)| (i, b, m, s)))
            .map(|(i, b, m, s)| {
                let ratio = if s > 0.0 { m / s } else { 0.0 };
                let skipped = stats.skipped.get(i).copied().unwrap_or(false);
                obj(&[("name", b.0.clone().into()), ("main", m.into()), ("shortcut", s.into()), ("ratio", ratio.into()), ("skipped", skipped.into())])
            })
            .collect())
    }

    /// Switches an identity block's main path off or on, from the next frame.
    pub fn set_block_enabled(&self, name: &str, enabled: bool) -> Result<(), JsValue> {
        let (_, role) = self.block(name)?;
        if role != BlockRole::Identity {
            return Err(js_error(ErrorKind::BadInput.code(), &format!("only identity blocks can be skipped; `{name}` is a {role} block")));
        }
        self.enabled.borrow_mut().insert(name.to_string(), enabled);
        self.switches.borrow_mut().push((name.to_string(), enabled));
        Ok(())
    }

    pub fn block_enabled(&self, name: &str) -> Result<bool, JsValue> {
        self.block(name)?;
        Ok(self.enabled.borrow().get(name).copied().unwrap_or(true))
    }

    /// `[{ name, ms }]` GPU time per stage of the last frame, or `null`
    /// where the adapter has no timestamp queries.
    pub fn stage_times(&self) -> JsValue {
        match &*self.stage_ms.borrow() {
            Some(st) => st.iter().map(|(n, ms)| obj(&[("name", n.clone().into()), ("ms", (*ms).into())])).collect::<Array>().into(),
            None => JsValue::NULL,
        }
    }

    /// `[{ name, ms }]`: every op of the current input timed alone (GPU
    /// timestamps, or the CPU's clock), for benchmarks; not part of the
    /// `ResNet` API.
    pub async fn profile_layers(&self) -> Result<Array, JsValue> {
        let mut e = self.engine.try_borrow_mut().map_err(|_| busy())?;
        let layers = e.profile_layers().await.map_err(err)?;
        Ok(layers.into_iter().map(|(n, ms)| obj(&[("name", n.into()), ("ms", ms.into())])).collect())
    }

    /// `{ width, height, data }`: the class activation map of class `index`.
    pub async fn class_activation_map(&self, index: u32) -> Result<JsValue, JsValue> {
        let mut e = self.engine.try_borrow_mut().map_err(|_| busy())?;
        let (h, w, cam) = e.class_activation_map(index as usize).await.map_err(err)?;
        Ok(obj(&[("width", (w as u32).into()), ("height", (h as u32).into()), ("data", Float32Array::from(&cam[..]).into())]))
    }
}

// ------------------------------------------------------------------ training

/// A model being trained, on the CPU backend or the GPU: examples (frames or tensors),
/// then steps one call at a time, so the page can yield, show progress and
/// stop between them. `js/index.js` wraps it as `Trainer`.
/// Where training runs: `webgpu`, `cpu`, or `auto` (WebGPU unless its
/// adapter is a software one, which trains slower than the CPU backend).
async fn training_gpu(backend: &str) -> Result<Option<Rc<Gpu>>, JsValue> {
    Ok(match backend {
        "webgpu" => Some(Rc::new(Gpu::new().await.map_err(err)?)),
        "auto" => Gpu::new().await.ok().filter(|g| !g.is_software()).map(Rc::new),
        "cpu" => None,
        other => return Err(js_error("BAD_INPUT", &format!("unknown trainer backend `{other}`: use 'auto', 'webgpu' or 'cpu'"))),
    })
}

/// The residual experiment: a ResNet and its plain twin trained side by side.
#[wasm_bindgen]
pub struct WasmExperiment {
    ex: RefCell<crate::train::experiment::Experiment>,
    /// The residual and plain blocks (the heatmaps' rows), as JSON.
    blocks: String,
    steps: u32,
    on_gpu: bool,
}

#[wasm_bindgen]
impl WasmExperiment {
    /// `config`: the options as JSON (see `ExperimentConfig::from_json`);
    /// `dataset`: a dataset file's bytes (the digits by default, in JS);
    /// `backend`: as a trainer's.
    pub async fn create(config: String, dataset: Vec<u8>, backend: String) -> Result<WasmExperiment, JsValue> {
        console_error_panic_hook::set_once();
        let config = crate::train::experiment::ExperimentConfig::from_json(&config).map_err(err)?;
        let data = crate::dataset::Dataset::parse(&dataset).map_err(err)?;
        drop(dataset);
        let gpu = training_gpu(&backend).await?;
        let on_gpu = gpu.is_some();
        let ex = crate::train::experiment::Experiment::new(config, &data, gpu).await.map_err(err)?;
        let blocks = serde_json::to_string(&ex.blocks).expect("names serialise");
        let steps = ex.steps() as u32;
        Ok(WasmExperiment { ex: RefCell::new(ex), blocks, steps, on_gpu })
    }

    /// The residual and plain blocks, in order, as JSON.
    pub fn blocks(&self) -> String {
        self.blocks.clone()
    }

    /// Steps of the whole run (each network).
    pub fn steps(&self) -> u32 {
        self.steps
    }

    pub fn backend(&self) -> String {
        if self.on_gpu { "webgpu" } else { "cpu" }.to_string()
    }

    /// One step of both networks: `[residual, plain]` records as JSON, or null once the run is over.
    pub async fn step(&self) -> Result<JsValue, JsValue> {
        let mut ex = self.ex.try_borrow_mut().map_err(|_| busy())?;
        Ok(match ex.step().await.map_err(err)? {
            Some([a, b]) => serde_json::Value::Array(vec![a.to_json(), b.to_json()]).to_string().into(),
            None => JsValue::NULL,
        })
    }

    /// Network `arm`'s (0 residual, 1 plain) weights now, as `.safetensors` (its description in the metadata).
    pub fn export_weights(&self, arm: u32) -> Result<Vec<u8>, JsValue> {
        let ex = self.ex.try_borrow().map_err(|_| busy())?;
        let a = ex.arms.get(arm as usize).ok_or_else(|| js_error("BAD_INPUT", "arm is 0 (the residual network) or 1 (the plain one)"))?;
        Ok(a.trainer.weights.to_safetensors())
    }
}

#[wasm_bindgen]
pub struct WasmTrainer {
    trainer: RefCell<crate::train::Trainer>,
    /// Examples as JS hands them over.
    inbox: Inbox,
}

#[wasm_bindgen]
impl WasmTrainer {
    /// Parses the weights and plans training at `height`×`width`. `classes`
    /// (a JSON array of names) other than the weights' own get a new, seeded
    /// dense layer. `train`: `head`, `last-stage` or `all`; `bn`: `frozen`
    /// or `batch`; `augment`: random crops, flips and jitter, seeded;
    /// `memory_mb`: the cap on examples and training tensors; `backend`:
    /// `cpu`, `webgpu`, or `auto` (WebGPU unless its adapter is a software
    /// one, which trains slower than the CPU backend).
    #[allow(clippy::too_many_arguments)]
    pub async fn create(bytes: Vec<u8>, classes: String, train: String, bn: String, height: u32, width: u32, augment: bool, seed: u32, memory_mb: u32, backend: String) -> Result<WasmTrainer, JsValue> {
        console_error_panic_hook::set_once();
        let train: crate::train::Trainable = train.parse().map_err(err)?;
        let bn: crate::train::BnMode = bn.parse().map_err(err)?;
        let classes: Vec<String> = serde_json::from_str(&classes).map_err(|_| js_error("BAD_INPUT", "classes must be an array of class names"))?;
        let mut weights = Weights::from_safetensors(&bytes).map_err(err)?;
        drop(bytes);
        if classes.len() < 2 {
            return Err(js_error("BAD_INPUT", &format!("training needs at least two classes, got {}", classes.len())));
        }
        if weights.labels.as_ref() != Some(&classes) {
            if classes.len() == weights.model.classes() && weights.labels.is_none() {
                weights.labels = Some(classes);
            } else {
                crate::train::fit::new_head(&mut weights, classes, seed as u64);
            }
        }
        let config = crate::train::TrainConfig { bn, train };
        let gpu = training_gpu(&backend).await?;
        let (h, w) = (height as usize, width as usize);
        let mut trainer = match gpu {
            Some(gpu) => crate::train::Trainer::new_gpu(gpu, weights, h, w, config),
            None => crate::train::Trainer::new(weights, h, w, config),
        }
        .map_err(err)?;
        trainer.set_memory_limit((memory_mb as u64) << 20);
        trainer.set_augment(augment.then(crate::train::Augment::default), seed as u64).map_err(err)?;
        Ok(WasmTrainer { trainer: RefCell::new(trainer), inbox: Inbox::default() })
    }

    /// A view of `len` bytes for the next example's RGBA8 pixels (see `WasmResNet::pixel_view`).
    pub fn pixel_view(&self, len: u32) -> Result<js_sys::Uint8Array, JsValue> {
        self.inbox.view(len)
    }

    /// Adds the `width`×`height` pixels written through `pixel_view` as an
    /// example of class `class`, preprocessed as `classify` does (kept
    /// whole when augmenting).
    pub async fn add_pixels(&self, width: u32, height: u32, class: u32) -> Result<(), JsValue> {
        let mut t = self.trainer.try_borrow_mut().map_err(|_| busy())?;
        let frame = self.inbox.frame(width, height)?;
        t.add_pixels(&frame, width as usize, height as usize, class as usize).await.map_err(err)
    }

    /// Starts a large frame handed over in strips (see `WasmResNet::begin_strips`).
    pub fn begin_strips(&self, width: u32, height: u32, rect: Vec<u32>) -> Result<(), JsValue> {
        let size = self.trainer.try_borrow().map_err(|_| busy())?.input_size();
        self.inbox.begin_strips(width, height, &rect, size)
    }

    pub fn push_strip(&self, len: u32) -> Result<(), JsValue> {
        self.inbox.push_strip(len)
    }

    /// Adds the frame handed over in strips as an example of class `class`.
    pub async fn add_strips(&self, class: u32) -> Result<(), JsValue> {
        let x = self.inbox.strips_input()?;
        self.trainer.try_borrow_mut().map_err(|_| busy())?.add(&x, &[class as usize]).await.map_err(err)
    }

    /// Adds a raw `3×H×W` tensor at the trainer's input size as an example of class `class`.
    pub async fn add_tensor(&self, data: Vec<f32>, class: u32) -> Result<(), JsValue> {
        let mut t = self.trainer.try_borrow_mut().map_err(|_| busy())?;
        t.add(&data, &[class as usize]).await.map_err(err)
    }

    pub fn remove(&self, index: u32) -> Result<(), JsValue> {
        self.trainer.try_borrow_mut().map_err(|_| busy())?.remove(index as usize).map_err(err)
    }

    pub fn count(&self) -> u32 {
        self.trainer.borrow().len() as u32
    }

    /// `webgpu` or `cpu`: where the passes run.
    pub fn backend(&self) -> String {
        if self.trainer.borrow().on_gpu() { "webgpu" } else { "cpu" }.to_string()
    }

    /// Starts a run: `optimizer` `sgd` or `adamw`, `schedule` `constant` or `cosine`.
    #[allow(clippy::too_many_arguments)]
    pub fn begin(&self, optimizer: String, lr: f32, momentum: f32, weight_decay: f32, schedule: String, epochs: u32, batch: u32, validation: f64, seed: u32) -> Result<(), JsValue> {
        let kind: crate::train::OptimizerKind = optimizer.parse().map_err(err)?;
        let mut optim = crate::train::OptimConfig::new(kind, lr);
        optim.momentum = momentum;
        optim.weight_decay = weight_decay;
        optim.schedule = schedule.parse().map_err(err)?;
        let fit = crate::train::FitConfig { epochs: epochs as usize, batch: batch as usize, val_fraction: validation, seed: seed as u64 };
        let mut t = self.trainer.try_borrow_mut().map_err(|_| busy())?;
        t.check_every_class().map_err(err)?;
        t.begin(optim, fit).map_err(err)
    }

    /// One step: `{ step, steps, loss, epoch: { epoch, loss, accuracy, valAccuracy } | null }`, or null once the run is over.
    pub async fn step(&self) -> Result<JsValue, JsValue> {
        let mut t = self.trainer.try_borrow_mut().map_err(|_| busy())?;
        let Some(r) = t.step().await.map_err(err)? else { return Ok(JsValue::NULL) };
        let epoch = match &r.epoch {
            Some(e) => obj(&[
                ("epoch", (e.epoch as u32).into()),
                ("loss", e.loss.into()),
                ("accuracy", e.train_accuracy.into()),
                ("valAccuracy", e.val_accuracy.map_or(JsValue::NULL, JsValue::from)),
            ]),
            None => JsValue::NULL,
        };
        Ok(obj(&[("step", (r.step as u32).into()), ("steps", (r.steps as u32).into()), ("loss", r.loss.into()), ("epoch", epoch)]))
    }

    /// `[{ name, weights, input }]`: ‖∂L/∂W‖ of each block's tensors and
    /// ‖∂L/∂x‖ at its input in the last step (null where none).
    pub fn gradient_norms(&self) -> Array {
        let t = self.trainer.borrow();
        let opt = |v: Option<f64>| v.map_or(JsValue::NULL, JsValue::from);
        t.gradient_norms().iter().map(|b| obj(&[("name", b.name.clone().into()), ("weights", opt(b.weights)), ("input", opt(b.input))])).collect()
    }

    /// `[{ example, label, predicted }]`: the held-out examples after the last epoch.
    pub fn validation(&self) -> Array {
        let t = self.trainer.borrow();
        t.validation().iter().map(|&(e, y, p)| obj(&[("example", (e as u32).into()), ("label", (y as u32).into()), ("predicted", (p as u32).into())])).collect()
    }

    /// The weights as they are now, as `.safetensors` (their own names and layouts, class names in the metadata).
    pub fn export_weights(&self) -> Vec<u8> {
        self.trainer.borrow().weights.to_safetensors()
    }
}
