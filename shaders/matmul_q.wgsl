{{ enable }}
// Quantized matmul: Y[t, n] (+)= sum_k X[t, k] * W[n, k] (+ bias[n]), W in (repacked) GGUF blocks.
//
// One invocation per (ROWS output rows, tile of TILE_T tokens): it walks the rows' 32-element
// chunks; per chunk it loads the TILE_T token rows of X into registers once, then dequantizes
// each of its ROWS weight chunks in registers and dots it with them, so each weight is read once
// per tile and each activation once per ROWS rows (TILE_T = 1 is the decode GEMV; prefill uses a
// larger tile). Why ROWS: lavapipe (Mesa's CPU Vulkan driver) turns every storage-buffer load
// whose address it cannot prove uniform (anything from a loop counter, a workgroup id or a Params
// field) into a loop over the SIMD lanes, a component at a time; a GEMV row chunk costs 5 weight
// words but 32 activation floats, so sharing the activations between rows is most of the speed.
// No workgroup memory and no barriers: on lavapipe barriers split the shader and cost more than
// the reduction saves, and its workgroup-memory loads are per-lane loops too. All loops have
// constant trip counts apart from the chunk loop, so `v`, `x*` and the accumulators stay in
// registers. The sums keep their order (per chunk: 8 vec4 dots, left to right), so the result
// does not depend on ROWS or TILE_T.
// Dispatch: x,y = groups of 64 invocations (64·ROWS rows; folded to 2-D past 65535), z = token
// tiles. The output may be a column window of a wider buffer (`out_stride`, `out_col`): that is
// how Q, K and V (or gate and up) land side by side without a copy.

const TILE_T: u32 = {{ tile_t }}u;
const ROWS: u32 = {{ rows }}u;

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
@group(0) @binding(1) var<storage, read_write> X: array<vec4<{{ act }}>>;
@group(0) @binding(2) var<storage, read_write> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<{{ act }}>;
@group(0) @binding(4) var<uniform> P: Params;

// X[t, 32c .. 32c+32] (from vec4 index x0) into registers.
fn load_x(x: ptr<function, array<vec4<f32>, 8>>, x0: u32) {
    (*x)[0] = vec4<f32>(X[x0]);      (*x)[1] = vec4<f32>(X[x0 + 1u]);
    (*x)[2] = vec4<f32>(X[x0 + 2u]); (*x)[3] = vec4<f32>(X[x0 + 3u]);
    (*x)[4] = vec4<f32>(X[x0 + 4u]); (*x)[5] = vec4<f32>(X[x0 + 5u]);
    (*x)[6] = vec4<f32>(X[x0 + 6u]); (*x)[7] = vec4<f32>(X[x0 + 7u]);
}

// v · x, in the fixed order every tile size shares.
fn dot32(v: ptr<function, array<vec4<f32>, 8>>, x: ptr<function, array<vec4<f32>, 8>>) -> f32 {
    return dot((*v)[0], (*x)[0]) + dot((*v)[1], (*x)[1]) + dot((*v)[2], (*x)[2]) + dot((*v)[3], (*x)[3])
         + dot((*v)[4], (*x)[4]) + dot((*v)[5], (*x)[5]) + dot((*v)[6], (*x)[6]) + dot((*v)[7], (*x)[7]);
}

// "q8" mode (llama.cpp-compatible numerics): X holds `quantize_act`'s output, integer
// activations [t, k] then a (scale, sum) pair per (token, 32-chunk); the weight chunk comes from
// `iquant32` as integers and (p, m): ggml's per-block float arithmetic on an exact integer dot.
fn xparams(tok: u32, c: u32) -> vec2<f32> {
    let i = (P.t * P.k) / 2u + tok * (P.k / 32u) + c;
    let x = vec4<f32>(X[i / 2u]);
    if ((i & 1u) == 0u) { return x.xy; }
    return x.zw;
}

fn dot_q8(v: ptr<function, array<vec4<f32>, 8>>, pw: vec2<f32>, x: ptr<function, array<vec4<f32>, 8>>, xp: vec2<f32>) -> f32 {
    return pw.x * xp.x * dot32(v, x) + pw.y * xp.y;
}

fn bias_of(row: u32) -> f32 {
    if ((P.flags & 1u) != 0u) { return B[P.out_col + row]; }
    return 0.0;
}

fn store(t: u32, row: u32, acc: f32, bias: f32) {
    if (t < P.t) {
        let o = t * P.out_stride + P.out_col + row;
        var y = acc + bias;
        if ((P.flags & 2u) != 0u) { y += f32(Y[o]); }
        Y[o] = {{ act }}(y);
    }
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let r0 = (gid.x + gid.y * nwg.x * 64u) * ROWS;
    if (r0 >= P.n) { return; }
    let k4 = P.k / 4u;
    let t0 = wid.z * TILE_T;
    let tl = P.t - 1u;
    let chunks = P.k / 32u;
    // Rows past the end re-read the last row; their sums are never written.
{{ row_decl }}
    // The accumulators a<row>_<token> are separate scalars, written out by the host for each
    // tile: an array indexed in a loop lands in memory on CPU drivers and costs 10x.
{{ tile_decl }}
    var v: array<vec4<f32>, 8>;
{{ x_decl }}
    for (var c = 0u; c < chunks; c++) {
        // Tokens past the end re-read the last row; their sums are never written.
{{ x_load }}
{{ tile_body }}
    }
{{ tile_store }}
}
