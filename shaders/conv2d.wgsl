// 2-D convolution, direct (implicit-GEMM order: the reduction runs over ci·k·k), NCHW:
//   Y[b, o, y, x] = bias[o] + Σ_{c, i, j} X[b, c, y·s − pt + i, x·s − pl + j] · W[o, c, i, j]
// with zero padding (taps outside the input read 0). Padding is given as top/left; bottom/right
// follow from ho/wo, so asymmetric padding (diffusers' VAE encoder pads right and bottom only)
// is the same kernel.
// Grid: x = ceil(ho·wo / 64) pixel groups, y = ceil(co / 8) channel blocks, z = batch. Each
// invocation computes 8 output channels of one pixel: one input read feeds 8 FMAs, and the
// 64 invocations of a workgroup read the same weights (broadcast in cache).

struct Params {
    ci: u32,
    h: u32,
    w: u32,
    co: u32,
    ho: u32,
    wo: u32,
    k: u32,
    stride: u32,
    pad_t: u32,
    pad_l: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Wt: array<f32>;
@group(0) @binding(2) var<storage, read_write> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@group(0) @binding(4) var<storage, read_write> P: Params;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let npix = P.ho * P.wo;
    let pix = gid.x;
    if (pix >= npix) { return; }
    let o0 = gid.y * 8u;
    let b = gid.z;
    let oy = pix / P.wo;
    let ox = pix % P.wo;
    let kk = P.k * P.k;
    let wstride = P.ci * kk;  // one output channel's weights
    var acc = array<f32, 8>(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    // Channels past co read channel co − 1's weights (in bounds) and are not stored.
    var wrow = array<u32, 8>();
    for (var r = 0u; r < 8u; r++) {
        wrow[r] = min(o0 + r, P.co - 1u) * wstride;
    }
    for (var c = 0u; c < P.ci; c++) {
        let xc = (b * P.ci + c) * P.h * P.w;
        for (var i = 0u; i < P.k; i++) {
            // unsigned wrap-around: a tap above the input becomes a huge index, caught by < h
            let iy = oy * P.stride + i - P.pad_t;
            if (iy >= P.h) { continue; }
            for (var j = 0u; j < P.k; j++) {
                let ix = ox * P.stride + j - P.pad_l;
                if (ix >= P.w) { continue; }
                let v = X[xc + iy * P.w + ix];
                let wi = c * kk + i * P.k + j;
                for (var r = 0u; r < 8u; r++) {
                    acc[r] += v * Wt[wrow[r] + wi];
                }
            }
        }
    }
    for (var r = 0u; r < 8u; r++) {
        let o = o0 + r;
        if (o < P.co) {
            Y[((b * P.co + o) * P.ho + oy) * P.wo + ox] = acc[r] + B[o];
        }
    }
}
