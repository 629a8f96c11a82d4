//! The network in the terms of the classic ResNet lesson, as plain data.
//!
//! A [`Model`] is a stem, a list of residual blocks (each an *identity block*
//! or a *convolutional block*, grouped in stages) and a head. Nothing here
//! touches the GPU or the weights' bytes: the weight loader builds a `Model`
//! from tensor names and shapes, the planner turns it into dispatches.

use crate::{bail, Result};

/// Which naming convention (and so which defaults) the weights came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// torchvision / timm: `layer1.0.conv1.weight`, OIHW kernels, BN eps 1e-5.
    Torchvision,
    /// The seed's Keras model: `res2a_branch2a.kernel`, HWIO kernels, BN eps 1e-3.
    Keras,
}

/// Identity block: the shortcut is the input itself. Convolutional block: the
/// shortcut is a strided 1×1 conv + BN that changes the shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    Identity,
    Convolutional,
    /// No shortcut at all: `relu(main)`, a plain network's pair of layers
    /// (the residual experiment's twin, built from a description only).
    Plain,
}

impl BlockKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BlockKind::Identity => "identity",
            BlockKind::Convolutional => "convolutional",
            BlockKind::Plain => "plain",
        }
    }
}

/// Where a block that downsamples puts its stride.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StridePlacement {
    /// ResNet v1 (the paper, Keras, Caffe): on the first 1×1 conv.
    FirstConv,
    /// ResNet v1.5 (torchvision, timm): on the f×f conv of a bottleneck.
    SpatialConv,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConvSpec {
    /// The layer's name in the weights' own scheme (`layer1.0.conv1`, `res2a_branch2a`).
    pub name: String,
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: (usize, usize),
    pub stride: usize,
    /// Zero padding on each side, (rows, columns).
    pub padding: (usize, usize),
    pub bias: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BatchNormSpec {
    pub name: String,
    pub channels: usize,
    pub eps: f32,
}

/// A conv followed by its batchnorm: the unit every path is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvBn {
    pub conv: ConvSpec,
    pub bn: BatchNormSpec,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PoolSpec {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stem {
    pub conv: ConvBn,
    /// ImageNet ResNets' max pool; CIFAR-style networks have none.
    pub pool: Option<PoolSpec>,
}

/// One residual block. `main` is the main path (3 convs for a bottleneck,
/// 2 for a basic block); a ReLU follows every main-path BN but the last.
/// Then `relu(main + shortcut)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// `layer2.0`, `res3a`, …: also the name of the block's output tensor.
    pub name: String,
    /// 1-based stage number in torchvision's counting (layer1 = stage 1 = Keras stage 2).
    pub stage: usize,
    pub kind: BlockKind,
    pub main: Vec<ConvBn>,
    pub shortcut: Option<ConvBn>,
}

impl Block {
    pub fn in_channels(&self) -> usize {
        self.main[0].conv.in_channels
    }
    pub fn out_channels(&self) -> usize {
        self.main.last().unwrap().conv.out_channels
    }
    /// The block's overall stride (the product of its main path's strides).
    pub fn stride(&self) -> usize {
        self.main.iter().map(|c| c.conv.stride).product()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DenseSpec {
    pub name: String,
    pub in_features: usize,
    pub classes: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub scheme: Scheme,
    /// A short description such as `ResNet-50 (bottleneck, v1.5)`.
    pub description: String,
    /// v1 or v1.5; the strides in the blocks' [`ConvSpec`]s follow it.
    pub stride_placement: StridePlacement,
    pub stem: Stem,
    pub blocks: Vec<Block>,
    /// Global average pool over the whole final map, then this dense layer.
    pub head: DenseSpec,
}

/// Shape of one image's activation, channels first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Shape {
    pub fn new(c: usize, h: usize, w: usize) -> Self {
        Shape { c, h, w }
    }
    /// Values in the tensor, or `None` when that overflows.
    pub fn checked_len(&self) -> Option<usize> {
        self.c.checked_mul(self.h)?.checked_mul(self.w)
    }
    pub fn len(&self) -> usize {
        self.c * self.h * self.w
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Display for Shape {
    /// `64×56×56`: channels × height × width.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}×{}×{}", self.c, self.h, self.w)
    }
}

/// The smallest input side we promise to handle. Smaller inputs may still
/// produce maps of at least 1×1, but the last stages then see nothing but
/// padding: refuse them with a clear message instead.
pub const MIN_INPUT_SIDE: usize = 32;

/// The largest input side we take (a 4096×4096 input already needs gigabytes
/// of activations; ImageNet models are trained at 224). Larger sizes are
/// refused before anything is allocated.
pub const MAX_INPUT_SIDE: usize = 4096;

/// The largest tensor we plan, in values: indices are 32-bit in the shaders.
pub const MAX_TENSOR_VALUES: u64 = u32::MAX as u64;

/// Checks an input size against [`MIN_INPUT_SIDE`] and [`MAX_INPUT_SIDE`].
pub fn check_input_size(height: usize, width: usize) -> Result<()> {
    check_input_side(height, width, MIN_INPUT_SIDE)
}

/// Checks an input size against `min` and [`MAX_INPUT_SIDE`].
pub fn check_input_side(height: usize, width: usize, min: usize) -> Result<()> {
    if height > MAX_INPUT_SIDE || width > MAX_INPUT_SIDE {
        bail!(InputTooLarge, "input {height}×{width} is larger than this engine takes (at most {MAX_INPUT_SIDE} pixels on a side)");
    }
    if height < min || width < min {
        bail!(BadInput, "input {height}×{width} is smaller than the network allows (at least {min}×{min})");
    }
    Ok(())
}

/// Output size of a conv or pool along one axis, or `None` when the window
/// does not fit even once.
pub fn out_size(input: usize, kernel: usize, stride: usize, padding: usize) -> Option<usize> {
    let padded = input.checked_add(padding.checked_mul(2)?)?;
    if padded < kernel || stride == 0 {
        return None;
    }
    Some((padded - kernel) / stride + 1)
}

impl ConvSpec {
    pub fn output_shape(&self, input: Shape) -> Option<Shape> {
        Some(Shape::new(
            self.out_channels,
            out_size(input.h, self.kernel.0, self.stride, self.padding.0)?,
            out_size(input.w, self.kernel.1, self.stride, self.padding.1)?,
        ))
    }
}

impl PoolSpec {
    pub fn output_shape(&self, input: Shape) -> Option<Shape> {
        // A pool window must start inside the unpadded input, else it sees only padding.
        if self.padding * 2 > self.kernel {
            return None;
        }
        Some(Shape::new(
            input.c,
            out_size(input.h, self.kernel, self.stride, self.padding)?,
            out_size(input.w, self.kernel, self.stride, self.padding)?,
        ))
    }
}

impl Model {
    pub fn classes(&self) -> usize {
        self.head.classes
    }

    /// The smallest input side the network takes: its overall stride (32
    /// for ImageNet ResNets, whose last stage then sees a 1×1 map; 4 for
    /// CIFAR-style ones). Smaller inputs leave the last stages nothing but padding.
    pub fn min_input_side(&self) -> usize {
        let pool = self.stem.pool.as_ref().map_or(1, |p| p.stride);
        let blocks: usize = self.blocks.iter().map(Block::stride).product();
        (self.stem.conv.conv.stride * pool * blocks).clamp(1, MIN_INPUT_SIDE)
    }

    /// Every block's output shape for an input of `height`×`width`, stem first.
    /// Fails with a clear message for inputs the network cannot take.
    pub fn block_shapes(&self, height: usize, width: usize) -> Result<Vec<(String, Shape)>> {
        check_input_side(height, width, self.min_input_side())?;
        let too_small = |at: &str| {
            crate::Error::of(crate::ErrorKind::BadInput, format!("input {height}×{width} is smaller than the network allows: the feature map vanishes at {at}"))
        };
        // Every tensor must be addressable with the shaders' 32-bit indices.
        let fits = |s: Shape, at: &str| -> Result<Shape> {
            match s.checked_len() {
                Some(n) if n as u64 <= MAX_TENSOR_VALUES => Ok(s),
                _ => bail!(InputTooLarge, "input {height}×{width} is too large for this network: {at} would be {s}, over 2³² values"),
            }
        };
        let input = Shape::new(self.stem.conv.conv.in_channels, height, width);
        let s = fits(self.stem.conv.conv.output_shape(input).ok_or_else(|| too_small(&self.stem.conv.conv.name))?, &self.stem.conv.conv.name)?;
        let mut x = match &self.stem.pool {
            Some(p) => p.output_shape(s).ok_or_else(|| too_small("the stem's max pool"))?,
            None => s,
        };
        let mut shapes = vec![("stem".to_string(), x)];
        for b in &self.blocks {
            let mut y = x;
            for cb in &b.main {
                y = fits(cb.conv.output_shape(y).ok_or_else(|| too_small(&cb.conv.name))?, &cb.conv.name)?;
            }
            if let Some(sc) = &b.shortcut {
                let z = sc.conv.output_shape(x).ok_or_else(|| too_small(&sc.conv.name))?;
                if z != y {
                    bail!("block {}: the main path gives {y} but the shortcut gives {z}", b.name);
                }
            } else if y != x && b.kind != BlockKind::Plain {
                bail!("identity block {} changes the shape from {x} to {y}", b.name);
            }
            shapes.push((b.name.clone(), y));
            x = y;
        }
        Ok(shapes)
    }

    /// Checks that consecutive layers agree on channel counts.
    pub fn validate(&self) -> Result<()> {
        let mut c = self.stem.conv.conv.out_channels;
        for b in &self.blocks {
            let mut y = c;
            for cb in &b.main {
                if cb.conv.in_channels != y {
                    bail!("{} expects {} input channels but receives {}", cb.conv.name, cb.conv.in_channels, y);
                }
                y = cb.conv.out_channels;
            }
            match &b.shortcut {
                Some(sc) if sc.conv.in_channels != c || sc.conv.out_channels != y => bail!(
                    "{} maps {}→{} channels but the block needs {}→{}",
                    sc.conv.name, sc.conv.in_channels, sc.conv.out_channels, c, y
                ),
                None if c != y && b.kind != BlockKind::Plain => bail!("identity block {} changes channels {}→{}", b.name, c, y),
                _ => {}
            }
            c = y;
        }
        if self.head.in_features != c {
            bail!("{} expects {} features but the last block gives {}", self.head.name, self.head.in_features, c);
        }
        Ok(())
    }

    /// All conv+BN units in execution order, stem first.
    pub fn conv_bns(&self) -> impl Iterator<Item = &ConvBn> {
        std::iter::once(&self.stem.conv).chain(self.blocks.iter().flat_map(|b| b.main.iter().chain(b.shortcut.iter())))
    }
}
