// 2-D convolution as an implicit GEMM, NCHW activations:
//   Y[b, o, y, x] (+)= bias[o] + Σ_{c, i, j} X[b, c, y·s − pt + i, x·s − pl + j] · W[(c·k + i)·k + j, o]
// with zero padding (taps outside the input read 0). Padding is given as top/left; bottom/right
// follow from ho/wo, so asymmetric padding (diffusers' VAE encoder pads right and bottom only)
// is the same kernel.
// Weights are laid out once at load as rows of taps: W[tap][o] for tap = (c·k + i)·k + j, the
// output channels of one tap side by side (padded to a multiple of 32), in f32 or in Q8_0/Q4_0
// blocks of 32 output channels (`{{ mode }}`), dequantized in registers. The kernel can work on a
// window of the weight (input channels from row `w_row0 / k²`, outputs from column `w_col0`)
// and add into Y, which is how a convolution over channel parts (VAE decoder at 512²) sums its
// input parts without copies, and how a weight kept in several buffers (larger than one storage
// binding) is summed: a dispatch covers input channels x_c0 .. x_c0 + ci of X.
// Grid: x = pixel groups of 4 along a row (ho · ⌈wo/4⌉, folded to 2-D past 65535 with y), z =
// batch · ⌈co/8⌉. Each invocation keeps 8 channels × 4 pixels in registers: per tap one load of
// 4 inputs and 8 weights feeds 32 FMAs, and the weights are the same for every invocation of a
// workgroup (a broadcast).

struct Params {
    ci: u32,       // input channels this dispatch sums over
    h: u32,
    w: u32,
    co: u32,       // output channels computed (the window's width)
    ho: u32,
    wo: u32,
    k: u32,
    stride: u32,
    pad_t: u32,
    pad_l: u32,
    w_ld: u32,     // weight row length in channels (a multiple of 32)
    w_row0: u32,   // first weight row in this weight buffer (= its first input channel used · k²)
    w_col0: u32,   // first output channel in the weight and the bias (a multiple of 8)
    cgroups: u32,  // ⌈co / 8⌉
    flags: u32,    // bit 0: add into Y; bit 1: add the bias
    x_c0: u32,     // first channel of X used
    x_ct: u32,     // channels in X
}

@group(0) @binding(0) var<storage, read_write> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> W: array<u32>;
@group(0) @binding(2) var<storage, read_write> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@group(0) @binding(4) var<storage, read_write> P: Params;

// The 8 weights of output channels o .. o+7 (o a multiple of 8) at weight row `row`.
struct W8 { a: vec4<f32>, b: vec4<f32> }

fn w8_f32(row: u32, o: u32) -> W8 {
    let i = row * P.w_ld + o;
    return W8(vec4<f32>(bitcast<f32>(W[i]), bitcast<f32>(W[i + 1u]), bitcast<f32>(W[i + 2u]), bitcast<f32>(W[i + 3u])),
              vec4<f32>(bitcast<f32>(W[i + 4u]), bitcast<f32>(W[i + 5u]), bitcast<f32>(W[i + 6u]), bitcast<f32>(W[i + 7u])));
}

fn sbytes(q: u32) -> vec4<f32> {
    let v = vec4<i32>(i32(q << 24u), i32(q << 16u), i32(q << 8u), i32(q)) >> vec4<u32>(24u);
    return vec4<f32>(v);
}

// Q8_0 along the channels: per (row, 32 channels) [d f16 | pad][32 × i8] = 9 words.
fn w8_q8_0(row: u32, o: u32) -> W8 {
    let wb = (row * (P.w_ld / 32u) + (o >> 5u)) * 9u;
    let d = unpack2x16float(W[wb]).x;
    let q = wb + 1u + ((o & 31u) >> 2u);
    return W8(sbytes(W[q]) * d, sbytes(W[q + 1u]) * d);
}

// Q4_0 along the channels: [d f16 | pad][16 bytes] = 5 words; channel j < 16 is the low nibble
// of byte j, channel j ≥ 16 the high nibble of byte j − 16.
fn w8_q4_0(row: u32, o: u32) -> W8 {
    let wb = (row * (P.w_ld / 32u) + (o >> 5u)) * 5u;
    let d = unpack2x16float(W[wb]).x;
    let j = o & 31u;
    let q = wb + 1u + ((j & 15u) >> 2u);
    let shift = (j >> 4u) * 4u;
    let lo = W[q] >> shift;
    let hi = W[q + 1u] >> shift;
    let n0 = vec4<u32>(lo, lo >> 8u, lo >> 16u, lo >> 24u) & vec4<u32>(15u);
    let n1 = vec4<u32>(hi, hi >> 8u, hi >> 16u, hi >> 24u) & vec4<u32>(15u);
    return W8((vec4<f32>(n0) - 8.0) * d, (vec4<f32>(n1) - 8.0) * d);
}

fn store(b: u32, o: u32, oy: u32, ox: u32, acc: vec4<f32>) {
    if (o >= P.co) { return; }
    var bias = 0.0;
    if ((P.flags & 2u) != 0u) { bias = B[P.w_col0 + o]; }
    let y0 = ((b * P.co + o) * P.ho + oy) * P.wo + ox;
    for (var q = 0u; q < 4u; q++) {
        if (ox + q < P.wo) {
            var v = acc[q] + bias;
            if ((P.flags & 1u) != 0u) { v += Y[y0 + q]; }
            Y[y0 + q] = v;
        }
    }
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let wq = (P.wo + 3u) / 4u;
    let pix = gid.x + gid.y * nwg.x * 64u;
    if (pix >= P.ho * wq) { return; }
    let b = gid.z / P.cgroups;
    let o = (gid.z % P.cgroups) * 8u;
    let oy = pix / wq;
    let ox = (pix % wq) * 4u;
    let s = P.stride;
    let col = P.w_col0 + o;
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    var a4 = vec4<f32>(0.0);
    var a5 = vec4<f32>(0.0);
    var a6 = vec4<f32>(0.0);
    var a7 = vec4<f32>(0.0);
    for (var c = 0u; c < P.ci; c++) {
        let xc = (b * P.x_ct + P.x_c0 + c) * P.h * P.w;
        for (var i = 0u; i < P.k; i++) {
            // unsigned wrap-around: a tap above the input becomes a huge index, caught by < h
            let iy = oy * s + i - P.pad_t;
            if (iy >= P.h) { continue; }
            let xr = xc + iy * P.w;
            let row0 = P.w_row0 + (c * P.k + i) * P.k;
            for (var j = 0u; j < P.k; j++) {
                let ix = vec4<u32>(ox * s + j - P.pad_l) + vec4<u32>(0u, s, 2u * s, 3u * s);
                let inb = ix < vec4<u32>(P.w);
                let ic = min(ix, vec4<u32>(P.w - 1u));
                let xv = select(vec4<f32>(0.0), vec4<f32>(X[xr + ic.x], X[xr + ic.y], X[xr + ic.z], X[xr + ic.w]), inb);
                let wt = w8_{{ mode }}(row0 + j, col);
                a0 += wt.a.x * xv;
                a1 += wt.a.y * xv;
                a2 += wt.a.z * xv;
                a3 += wt.a.w * xv;
                a4 += wt.b.x * xv;
                a5 += wt.b.y * xv;
                a6 += wt.b.z * xv;
                a7 += wt.b.w * xv;
            }
        }
    }
    store(b, o, oy, ox, a0);
    store(b, o + 1u, oy, ox, a1);
    store(b, o + 2u, oy, ox, a2);
    store(b, o + 3u, oy, ox, a3);
    store(b, o + 4u, oy, ox, a4);
    store(b, o + 5u, oy, ox, a5);
    store(b, o + 6u, oy, ox, a6);
    store(b, o + 7u, oy, ox, a7);
}
