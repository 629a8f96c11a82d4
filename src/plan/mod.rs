//! The execution plan: a [`Model`] and an input size turned into a flat list
//! of operations on numbered tensors, with buffer slots assigned.
//!
//! Pure data, no GPU: the engine instantiates it once per (model, input size,
//! mode) and replays it every frame.
//!
//! * `Inspect` keeps conv, batchnorm, ReLU and the residual add as separate
//!   operations and keeps every tensor, so each intermediate can be read.
//! * `Fast` folds each batchnorm into its conv and fuses the ReLU and the
//!   residual add into the conv's epilogue; buffers are reused once dead,
//!   except block outputs, which stay readable.

use std::collections::HashMap;

use crate::model::{Block, BlockKind, ConvBn, Model, Shape};
use crate::Result;

mod ops;
mod slots;

pub use ops::{ConvOp, Op, Storage, TensorId, TensorInfo};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Inspect,
    Fast,
}

crate::named_enum!(Mode { Inspect = "inspect", Fast = "fast" });

/// What a block is, in the lesson's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockRole {
    Stem,
    /// The shortcut is the input itself.
    Identity,
    /// The shortcut is a strided 1×1 conv + BN that changes the shape.
    Convolutional,
    /// No shortcut: a plain network's block.
    Plain,
    /// Global average pool, dense layer, softmax.
    Head,
}

crate::named_enum!(BlockRole { Stem = "stem", Identity = "identity", Convolutional = "convolutional", Plain = "plain", Head = "head" });

impl From<BlockKind> for BlockRole {
    fn from(k: BlockKind) -> BlockRole {
        match k {
            BlockKind::Identity => BlockRole::Identity,
            BlockKind::Convolutional => BlockRole::Convolutional,
            BlockKind::Plain => BlockRole::Plain,
        }
    }
}

/// The two paths a residual block adds: `relu(main + shortcut)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Residual {
    /// F(x): the main path's output before the add.
    pub main: TensorId,
    /// The input itself (identity block) or the shortcut conv's output.
    pub shortcut: TensorId,
}

/// Where a block sits, for the blocks list of the bindings and the CLI.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockInfo {
    pub name: String,
    pub stage: usize,
    pub role: BlockRole,
    /// The block's output.
    pub tensor: TensorId,
    /// Its input (the previous block's output); `None` for the stem.
    pub input: Option<TensorId>,
    /// The ops that compute it: `plan.ops[ops]`.
    pub ops: std::ops::Range<usize>,
    /// Residual blocks: the two tensors they add (both kept); `None` for plain ones.
    pub residual: Option<Residual>,
}

impl BlockInfo {
    /// The timing group the block belongs to: `stem`, `stage1`…, `head`.
    pub fn stage_name(&self) -> String {
        match self.role {
            BlockRole::Stem | BlockRole::Head => self.role.to_string(),
            _ => format!("stage{}", self.stage),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub mode: Mode,
    pub tensors: Vec<TensorInfo>,
    pub ops: Vec<Op>,
    pub input: TensorId,
    pub logits: TensorId,
    pub probs: TensorId,
    /// Stem, every residual block, then the head (pooled features).
    pub blocks: Vec<BlockInfo>,
    /// Tensor names (and aliases such as `layer1.0.main`) → ids.
    pub names: HashMap<String, TensorId>,
    /// Buffer slot of each tensor, and each slot's size in values.
    pub slot_of: Vec<usize>,
    pub slot_len: Vec<usize>,
}

struct Builder {
    mode: Mode,
    tensors: Vec<TensorInfo>,
    ops: Vec<Op>,
    names: HashMap<String, TensorId>,
}

impl Builder {
    fn tensor(&mut self, name: &str, shape: Shape) -> TensorId {
        let keep = self.mode == Mode::Inspect;
        self.tensors.push(TensorInfo { name: name.to_string(), shape, keep, storage: Storage::Activation });
        let id = self.tensors.len() - 1;
        self.names.insert(name.to_string(), id);
        id
    }

    /// A kept f32 tensor of the head.
    fn head_tensor(&mut self, name: &str, len: usize) -> TensorId {
        let id = self.tensor(name, Shape::new(len, 1, 1));
        self.tensors[id].storage = Storage::F32;
        self.keep(id);
        id
    }

    fn keep(&mut self, id: TensorId) {
        self.tensors[id].keep = true;
    }

    /// conv → BN (→ ReLU), separately in inspect mode, fused in fast mode.
    /// `residual` (fast mode only) is added before the ReLU, and F(x) is then
    /// kept as `<out_name>.main` too. `out_name` names the result in fast mode.
    fn conv_bn(&mut self, cb: &ConvBn, x: TensorId, relu: bool, residual: Option<TensorId>, out_name: &str) -> (TensorId, Option<TensorId>) {
        let shape = cb.conv.output_shape(self.tensors[x].shape).expect("shapes checked by Model::block_shapes");
        match self.mode {
            Mode::Fast => {
                let y = self.tensor(out_name, shape);
                let main_out = residual.map(|_| {
                    let m = self.tensor(&format!("{out_name}.main"), shape);
                    self.keep(m);
                    m
                });
                self.ops.push(Op::Conv(ConvOp { conv: cb.conv.clone(), folded: true, input: x, output: y, residual, relu, main_out }));
                (y, main_out)
            }
            Mode::Inspect => {
                let c = self.tensor(&cb.conv.name, shape);
                self.ops.push(Op::Conv(ConvOp { conv: cb.conv.clone(), folded: false, input: x, output: c, residual: None, relu: false, main_out: None }));
                let b = self.tensor(&cb.bn.name, shape);
                self.ops.push(Op::BatchNorm { bn: cb.bn.clone(), input: c, output: b });
                if !relu {
                    return (b, None);
                }
                let r = self.tensor(&format!("{}.relu", cb.bn.name), shape);
                self.ops.push(Op::Relu { input: b, output: r });
                (r, None)
            }
        }
    }

    /// A block on `x`: its output and, for a residual block, the two
    /// tensors it adds (a plain block ends in conv → BN → ReLU, nothing added).
    fn block(&mut self, b: &Block, x: TensorId) -> (TensorId, Option<Residual>) {
        let shortcut = (b.kind != BlockKind::Plain).then(|| {
            let shortcut = match &b.shortcut {
                Some(sc) => self.conv_bn(sc, x, false, None, &format!("{}.shortcut", b.name)).0,
                None => x,
            };
            // Kept: the per-frame residual statistics read it after the block.
            self.keep(shortcut);
            self.names.insert(format!("{}.shortcut", b.name), shortcut);
            shortcut
        });
        let (last, first) = b.main.split_last().expect("a block has a main path");
        let mut y = x;
        for cb in first {
            y = self.conv_bn(cb, y, true, None, &cb.conv.name).0;
        }
        let Some(shortcut) = shortcut else {
            let out = self.conv_bn(last, y, true, None, &b.name).0;
            self.names.insert(b.name.clone(), out);
            self.keep(out);
            return (out, None);
        };
        let (out, main) = match self.mode {
            Mode::Fast => {
                let (out, main) = self.conv_bn(last, y, true, Some(shortcut), &b.name);
                (out, main.expect("a fused residual conv writes F(x)"))
            }
            Mode::Inspect => {
                let main = self.conv_bn(last, y, false, None, &last.conv.name).0;
                let out = self.tensor(&b.name, self.tensors[main].shape);
                self.ops.push(Op::AddRelu { main, shortcut, output: out });
                (out, main)
            }
        };
        self.names.insert(format!("{}.main", b.name), main);
        self.keep(out);
        (out, Some(Residual { main, shortcut }))
    }
}

impl Plan {
    pub fn new(model: &Model, height: usize, width: usize, mode: Mode) -> Result<Plan> {
        model.block_shapes(height, width)?;
        let mut b = Builder { mode, tensors: Vec::new(), ops: Vec::new(), names: HashMap::new() };
        let input = b.tensor("input", Shape::new(model.stem.conv.conv.in_channels, height, width));
        b.keep(input);
        // f32 at every precision: uploaded as it is (no conversion on the
        // CPU); the first conv reads it as f32 (the f16 GEMMs round it as
        // they fill their f16 tiles).
        b.tensors[input].storage = Storage::F32;
        let mut blocks = Vec::new();

        let (s, _) = b.conv_bn(&model.stem.conv, input, true, None, "stem.conv");
        let mut x = match &model.stem.pool {
            Some(pool) => {
                let x = b.tensor("stem", pool.output_shape(b.tensors[s].shape).expect("checked"));
                b.ops.push(Op::MaxPool { pool: pool.clone(), input: s, output: x });
                x
            }
            None => {
                b.names.insert("stem".into(), s);
                s
            }
        };
        b.keep(x);
        blocks.push(BlockInfo { name: "stem".into(), stage: 0, role: BlockRole::Stem, tensor: x, input: None, ops: 0..b.ops.len(), residual: None });

        for blk in &model.blocks {
            let (input, first) = (x, b.ops.len());
            let (out, residual) = b.block(blk, x);
            x = out;
            let ops = first..b.ops.len();
            blocks.push(BlockInfo { name: blk.name.clone(), stage: blk.stage, role: blk.kind.into(), tensor: x, input: Some(input), ops, residual });
        }

        let head_first = b.ops.len();
        let pool = b.head_tensor("pool", b.tensors[x].shape.c);
        b.ops.push(Op::GlobalAvgPool { input: x, output: pool });
        let logits = b.head_tensor("logits", model.head.classes);
        b.ops.push(Op::Dense { input: pool, output: logits });
        let probs = b.head_tensor("probs", model.head.classes);
        b.ops.push(Op::Softmax { input: logits, output: probs });
        let stage = model.blocks.last().map_or(0, |b| b.stage) + 1;
        blocks.push(BlockInfo { name: "pool".into(), stage, role: BlockRole::Head, tensor: pool, input: Some(x), ops: head_first..b.ops.len(), residual: None });

        let (slot_of, slot_len) = slots::assign_slots(&b.tensors, &b.ops);
        Ok(Plan { mode, tensors: b.tensors, ops: b.ops, input, logits, probs, blocks, names: b.names, slot_of, slot_len })
    }

    pub fn tensor(&self, name: &str) -> Option<TensorId> {
        self.names.get(name).copied()
    }

    pub fn shape(&self, t: TensorId) -> Shape {
        self.tensors[t].shape
    }

    pub fn block(&self, name: &str) -> Option<&BlockInfo> {
        self.blocks.iter().find(|b| b.name == name)
    }

    /// The last residual block (what the class activation map weighs).
    pub fn last_features(&self) -> &BlockInfo {
        self.blocks.iter().rev().find(|b| b.role != BlockRole::Head).expect("a plan has a stem")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_op_reads_and_writes_one_slot() {
        // Minimal two-block model built by hand.
        use crate::model::*;
        let cb = |name: &str, i: usize, o: usize, k: usize, s: usize| ConvBn {
            conv: ConvSpec { name: name.into(), in_channels: i, out_channels: o, kernel: (k, k), stride: s, padding: (k / 2, k / 2), bias: false },
            bn: BatchNormSpec { name: format!("{name}.bn"), channels: o, eps: 1e-5 },
        };
        let model = Model {
            scheme: Scheme::Torchvision,
            description: "test".into(),
            stride_placement: StridePlacement::SpatialConv,
            stem: Stem { conv: cb("conv1", 3, 8, 7, 2), pool: Some(PoolSpec { kernel: 3, stride: 2, padding: 1 }) },
            blocks: vec![
                Block { name: "b0".into(), stage: 1, kind: BlockKind::Identity, main: vec![cb("b0.c1", 8, 8, 3, 1), cb("b0.c2", 8, 8, 3, 1)], shortcut: None },
                Block { name: "b1".into(), stage: 2, kind: BlockKind::Convolutional, main: vec![cb("b1.c1", 8, 16, 3, 2), cb("b1.c2", 16, 16, 3, 1)], shortcut: Some(cb("b1.d", 8, 16, 1, 2)) },
            ],
            head: DenseSpec { name: "fc".into(), in_features: 16, classes: 10 },
        };
        for mode in [Mode::Fast, Mode::Inspect] {
            let p = Plan::new(&model, 40, 33, mode).unwrap();
            for op in &p.ops {
                for t in op.inputs() {
                    for o in op.outputs() {
                        assert_ne!(p.slot_of[t], p.slot_of[o], "{mode:?} {op:?}");
                    }
                }
            }
            for t in 0..p.tensors.len() {
                assert!(p.slot_len[p.slot_of[t]] >= p.tensors[t].shape.len());
            }
            assert_eq!(p.blocks.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(), ["stem", "b0", "b1", "pool"]);
            assert_eq!(p.blocks.iter().map(|b| b.role).collect::<Vec<_>>(), [BlockRole::Stem, BlockRole::Identity, BlockRole::Convolutional, BlockRole::Head]);
            let r = p.blocks[2].residual.unwrap();
            assert_eq!(p.tensor("b1.main"), Some(r.main));
            assert_eq!(p.tensor("b1.shortcut"), Some(r.shortcut));
            assert!(p.tensors[r.main].keep && p.tensors[r.shortcut].keep);
            assert_eq!(p.tensors[p.logits].storage, Storage::F32);
            assert_eq!(p.tensors[p.input].storage, Storage::F32);
            assert_eq!(p.tensors[p.blocks[1].tensor].storage, Storage::Activation);
        }
        // The smallest side is the overall stride (8 here; 32 for ImageNet ResNets).
        assert_eq!(model.min_input_side(), 8);
        assert!(Plan::new(&model, 7, 64, Mode::Fast).unwrap_err().message().contains("smaller"));
    }
}
