// Embedding lookup from quantized rows: Y[t, :] = dequant(W[ids[t], :]).
// One invocation per (token, 32-element chunk); the decoders come from quant.wgsl.

struct Params {
    k: u32,          // row length (elements)
    t: u32,          // number of ids
    row_words: u32,
    n_rows: u32,     // rows in W, to refuse out-of-range ids
}

@group(0) @binding(0) var<storage, read_write> W: array<u32>;
@group(0) @binding(1) var<storage, read_write> IDS: array<u32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
@group(0) @binding(3) var<storage, read_write> P: Params;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let chunks = P.k / 32u;
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= P.t * chunks) { return; }
    let t = i / chunks;
    let c = i % chunks;
    // An id past the table reads row 0 rather than out of bounds; the host validates ids first.
    var id = IDS[t];
    if (id >= P.n_rows) { id = 0u; }
    var v: array<f32, 32>;
    dequant32(id * P.row_words, c, &v);
    let o = t * P.k + c * 32u;
    for (var j = 0u; j < 32u; j++) {
        Y[o + j] = v[j];
    }
}
