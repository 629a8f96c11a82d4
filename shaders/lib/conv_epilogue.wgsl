// The conv epilogue, shared by conv2d.wgsl, conv2d_gemm.wgsl and
// conv_splitk.wgsl (each has `// #include lib/conv_epilogue.wgsl`, expanded
// by kernels/source.rs: WGSL has no includes). They declare `bias`,
// `residual`, `main_out`, the storage alias `act` and a uniform `p` with a
// `flags` field.
//
// v is conv(x) for output channel `co` at flat index `o`; the result is what
// the layer stores: + bias[co] (the folded batchnorm), a copy of F(x) to
// main_out (for the ‖F(x)‖ statistic), + residual[o], ReLU.

const HAS_BIAS: u32 = 1u;
const HAS_RESIDUAL: u32 = 2u;
const RELU: u32 = 4u;
const WRITE_MAIN: u32 = 8u;

fn conv_epilogue(conv: f32, co: u32, o: u32) -> f32 {
    var v = conv;
    if ((p.flags & HAS_BIAS) != 0u) {
        v += bias[co];
    }
    if ((p.flags & WRITE_MAIN) != 0u) {
        main_out[o] = act(v);
    }
    if ((p.flags & HAS_RESIDUAL) != 0u) {
        v += f32(residual[o]);
    }
    if ((p.flags & RELU) != 0u) {
        v = max(v, 0.0);
    }
    return v;
}
