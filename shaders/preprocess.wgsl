// RGBA8 pixels -> normalised 3×H×W input tensor, in one pass:
// torchvision's eval transform (resize the shorter side bilinearly, centre
// crop, subtract the ImageNet mean, divide by the std).
//
// Only the cropped pixels are computed: output (x, y) is pixel
// (x + crop_x, y + crop_y) of the resized image, sampled from the source
// with PIL's antialiased bilinear filter (a triangle whose support widens
// with the downscale factor), the filter torchvision applies.

// #include lib/flat_index.wgsl

// The input tensor is f32 on every path (the f16 path's first conv reads
// it as f32), so the normalised values are stored unrounded.

struct Params {
    src_w: u32, src_h: u32, out_w: u32, out_h: u32,
    crop_x: u32, crop_y: u32, _p0: u32, _p1: u32,
    // resized -> source scale per axis
    scale: vec2<f32>, _p2: vec2<f32>,
    mean: vec4<f32>,
    inv_std: vec4<f32>,
}

@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> output: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

// Filter window [first, last) along one axis and the triangle's scale.
struct Window { first: i32, last: i32, center: f32, inv_scale: f32 }

fn window(o: u32, scale: f32, size: u32) -> Window {
    let filter_scale = max(scale, 1.0);
    let support = filter_scale;  // bilinear support (1.0) times filter scale
    let center = (f32(o) + 0.5) * scale;
    var w: Window;
    w.first = max(i32(floor(center - support + 0.5)), 0);
    w.last = min(i32(floor(center + support + 0.5)), i32(size));
    w.center = center;
    w.inv_scale = 1.0 / filter_scale;
    return w;
}

fn tri(w: Window, i: i32) -> f32 {
    return max(0.0, 1.0 - abs((f32(i) - w.center + 0.5) * w.inv_scale));
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    let plane = p.out_w * p.out_h;
    if (i >= plane) {
        return;
    }
    let ox = i % p.out_w;
    let oy = i / p.out_w;
    let wx = window(ox + p.crop_x, p.scale.x, p.src_w);
    let wy = window(oy + p.crop_y, p.scale.y, p.src_h);
    var sum = vec3<f32>(0.0);
    var wsum_y = 0.0;
    for (var y = wy.first; y < wy.last; y++) {
        let fy = tri(wy, y);
        var row = vec3<f32>(0.0);
        var wsum_x = 0.0;
        for (var x = wx.first; x < wx.last; x++) {
            let fx = tri(wx, x);
            row += fx * unpack4x8unorm(src[u32(y) * p.src_w + u32(x)]).rgb;
            wsum_x += fx;
        }
        sum += fy * row / wsum_x;
        wsum_y += fy;
    }
    let rgb = (sum / wsum_y - p.mean.rgb) * p.inv_std.rgb;
    output[i] = rgb.r;
    output[plane + i] = rgb.g;
    output[2u * plane + i] = rgb.b;
}
