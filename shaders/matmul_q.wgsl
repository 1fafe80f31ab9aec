// Quantized matmul: Y[t, n] (+)= sum_k X[t, k] * W[n, k] (+ bias[n]), W in (repacked) GGUF blocks.
//
// One invocation per (output row, tile of TILE_T tokens): it walks the row's 32-element chunks,
// dequantizes each once in registers and dots it with the TILE_T token rows of X, so each weight
// is read once per tile (TILE_T = 1 is the decode GEMV; prefill uses a larger tile). No
// workgroup memory and no barriers: on a CPU Vulkan driver (lavapipe) barriers split the shader
// and cost more than the reduction saves; all loops have constant trip counts apart from the
// chunk loop, so `v` and `acc` stay in registers.
// Dispatch: x,y = row groups of 64 (folded to 2-D past 65535), z = token tiles.
// The output may be a column window of a wider buffer (`out_stride`, `out_col`): that is how Q,
// K and V (or gate and up) land side by side without a copy.

const TILE_T: u32 = {{ tile_t }}u;

struct Params {
    k: u32,            // input features (multiple of 32; of 256 for K-quants)
    n: u32,            // output rows of this weight
    t: u32,            // tokens
    row_words: u32,    // u32 words per (repacked) weight row
    out_stride: u32,   // floats per row of Y
    out_col: u32,      // first column of Y written
    flags: u32,        // bit 0: add bias B[out_col + row], bit 1: accumulate into Y
    _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> W: array<u32>;
@group(0) @binding(1) var<storage, read_write> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@group(0) @binding(4) var<storage, read_write> P: Params;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = gid.x + gid.y * nwg.x * 64u;
    if (row >= P.n) { return; }
    let k = P.k;
    // From workgroup_id, not global_invocation_id: the compiler can then see that every X
    // address below is the same for all invocations (a broadcast load, not a gather).
    let t0 = wid.z * TILE_T;
    let base = row * P.row_words;
    let chunks = k / 32u;

    var acc: array<f32, TILE_T>;
    for (var i = 0u; i < TILE_T; i++) { acc[i] = 0.0; }
    var v: array<f32, 32>;
    for (var c = 0u; c < chunks; c++) {
        dequant32(base, c, &v);
        for (var i = 0u; i < TILE_T; i++) {
            // Tokens past the end re-read the last row; their sums are never written.
            let x0 = min(t0 + i, P.t - 1u) * k + c * 32u;
            var s = 0.0;
            for (var j = 0u; j < 32u; j += 4u) {
                s += dot(vec4<f32>(v[j], v[j + 1u], v[j + 2u], v[j + 3u]),
                         vec4<f32>(X[x0 + j], X[x0 + j + 1u], X[x0 + j + 2u], X[x0 + j + 3u]));
            }
            acc[i] += s;
        }
    }
    var bias = 0.0;
    if ((P.flags & 1u) != 0u) { bias = B[P.out_col + row]; }
    for (var i = 0u; i < TILE_T; i++) {
        if (t0 + i < P.t) {
            let o = (t0 + i) * P.out_stride + P.out_col + row;
            var y = acc[i] + bias;
            if ((P.flags & 2u) != 0u) { y += Y[o]; }
            Y[o] = y;
        }
    }
}
