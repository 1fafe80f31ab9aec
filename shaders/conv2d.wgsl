{{ enable }}
// 2-D convolution as an implicit GEMM, NCHW activations:
//   Y[b, o, y, x] (+)= bias[o] + Σ_{c, i, j} X[b, c, y·s − pt + i, x·s − pl + j] · W[(c·k + i)·k + j, o]
// with zero padding (taps outside the input read 0). Padding is given as top/left; bottom/right
// follow from ho/wo, so asymmetric padding (diffusers' VAE encoder pads right and bottom only)
// is the same kernel. The kernel size k and the stride s are template constants, and the
// accumulators, loads, taps and stores are generated unrolled by src/kernels/conv.rs (trap: a
// template name in braces is substituted even inside a comment), so every private value has a
// constant index (registers on a GPU).
// Weights are laid out once at load as rows of taps: W[tap][o] for tap = (c·k + i)·k + j, the
// output channels of one tap side by side (padded to a multiple of 32), in f32 or in Q8_0/Q4_0
// blocks of 32 output channels (`{{ mode }}`), dequantized in registers. The kernel can work on a
// window of the weight (input channels from row `w_row0 / k²`, outputs from column `w_col0`)
// and add into Y, which is how a convolution over channel parts (VAE decoder at 512²) sums its
// input parts without copies, and how a weight kept in several buffers (larger than one storage
// binding) is summed: a dispatch covers input channels x_c0 .. x_c0 + ci of X.
// Grid: x = pixel groups of 8 along a row (ho · ⌈wo/8⌉, folded to 2-D past 65535 with y), z =
// batch · ⌈co/8⌉. Each invocation keeps 8 channels × 8 pixels in registers. Per input row
// (c, i) it loads the 7·s + k inputs its 8 outputs' taps cover once, and per tap 8 weights,
// for 64 FMAs a tap.
// Trap (why the tile is this large): Mesa 22's lavapipe turns every storage-buffer load into a
// loop over the SIMD lanes, so a load costs far more than an FMA there (and in SwiftShader);
// the old 4-pixel tile that reloaded its inputs per tap ran at a third of this speed.
// The sum over (c, i, j) runs in the same order for every output whatever the tile, so results
// do not depend on it.

struct Params {
    ci: u32,       // input channels this dispatch sums over
    h: u32,
    w: u32,
    co: u32,       // output channels computed (the window's width)
    ho: u32,
    wo: u32,
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

@group(0) @binding(0) var<storage, read_write> X: array<{{ act }}>;
@group(0) @binding(1) var<storage, read_write> W: array<u32>;
@group(0) @binding(2) var<storage, read_write> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<{{ act }}>;
@group(0) @binding(4) var<uniform> P: Params;

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

// Input X[xr + ix], or 0 left/right of the row (ix wrapped around below 0 is huge).
fn xat(xr: u32, ix: u32) -> f32 {
    return select(0.0, f32(X[xr + min(ix, P.w - 1u)]), ix < P.w);
}

// Output channel o at pixels ox .. ox + 3 of row oy.
fn store(b: u32, o: u32, oy: u32, ox: u32, acc: vec4<f32>) {
    if (o >= P.co) { return; }
    var bias = 0.0;
    if ((P.flags & 2u) != 0u) { bias = B[P.w_col0 + o]; }
    let y0 = ((b * P.co + o) * P.ho + oy) * P.wo + ox;
    for (var q = 0u; q < 4u; q++) {
        if (ox + q < P.wo) {
            var v = acc[q] + bias;
            if ((P.flags & 1u) != 0u) { v += f32(Y[y0 + q]); }
            Y[y0 + q] = {{ act }}(v);
        }
    }
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let wq = (P.wo + 7u) / 8u;
    let pix = gid.x + gid.y * nwg.x * 64u;
    if (pix >= P.ho * wq) { return; }
    let b = gid.z / P.cgroups;
    let o = (gid.z % P.cgroups) * 8u;
    let oy = pix / wq;
    let ox = (pix % wq) * 8u;
    let col = P.w_col0 + o;
    // unsigned wrap-around: the first input column, left of the row when padding
    let bx = ox * {{ stride }}u - P.pad_l;
    // accumulator a<c><h>: channel o + c, pixels ox + 4·h .. ox + 4·h + 3
{{ conv_acc }}
    for (var c = 0u; c < P.ci; c++) {
        let xc = (b * P.x_ct + P.x_c0 + c) * P.h * P.w;
        for (var i = 0u; i < {{ k }}u; i++) {
            // unsigned wrap-around: a tap above the input becomes a huge index, caught by < h
            let iy = oy * {{ stride }}u + i - P.pad_t;
            if (iy >= P.h) { continue; }
            let xr = xc + iy * P.w;
            let row0 = P.w_row0 + (c * {{ k }}u + i) * {{ k }}u;
{{ conv_loads }}
{{ conv_taps }}
        }
    }
{{ conv_store }}
}
