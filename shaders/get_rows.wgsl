// Embedding lookup from quantized rows: Y[t, :] = dequant(W[ids[t] - row0, :]) for the ids this
// part of the table holds.
// One invocation per (token, 32-element chunk); the decoders come from quant.wgsl.

struct Params {
    k: u32,          // row length (elements)
    t: u32,          // number of ids
    row_words: u32,
    row0: u32,       // first row of the table held in W (a table may be split over buffers)
    n_rows: u32,     // rows held in W
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read_write> W: array<u32>;
@group(0) @binding(1) var<storage, read_write> IDS: array<u32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
@group(0) @binding(3) var<uniform> P: Params;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let chunks = P.k / 32u;
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= P.t * chunks) { return; }
    let t = i / chunks;
    let c = i % chunks;
    // Only ids held by this part; the host validates ids against the whole table first.
    let id = IDS[t];
    if (id < P.row0 || id >= P.row0 + P.n_rows) { return; }
    var v: array<vec4<f32>, 8>;
    dequant32((id - P.row0) * P.row_words, c, &v);
    let o = t * P.k + c * 32u;
    for (var j = 0u; j < 8u; j++) {
        let q = v[j];
        Y[o + 4u * j] = q.x;
        Y[o + 4u * j + 1u] = q.y;
        Y[o + 4u * j + 2u] = q.z;
        Y[o + 4u * j + 3u] = q.w;
    }
}
