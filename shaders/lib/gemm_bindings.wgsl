// The bindings of the implicit-GEMM convolutions (conv2d_gemm.wgsl,
// conv2d_coop.wgsl), in the order kernels/conv.rs `bind_gemm` binds them.
// The including shader declares the aliases `act`, `wt`, `out_t` and `in_t`.

// Flag: this pipeline writes raw split-K partial sums (conv_splitk.wgsl or
// the next conv's FOLDED loads finish them).
const SPLIT: u32 = 16u;

@group(0) @binding(0) var<storage, read> input: array<in_t>;
@group(0) @binding(1) var<storage, read> weight: array<wt>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> residual: array<act>;
@group(0) @binding(4) var<storage, read_write> output: array<out_t>;
// F(x) before the residual add, for the ‖F(x)‖ statistic (flag WRITE_MAIN).
@group(0) @binding(5) var<storage, read_write> main_out: array<act>;
// The previous conv's bias when the input is FOLDED.
@group(0) @binding(6) var<storage, read> in_bias: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;
