// Causal attention over the KV cache, grouped KV heads, online softmax (flash-attention style).
//   Q  [n_head, T, hd]          (written by rope.wgsl)
//   KC, VC [n_kv, ctx, hd]      (the cache; positions 0 .. pos0 + T - 1 are valid)
//   O  [T, n_head * hd]         (ready for the output projection)
// One workgroup of 64 per (head, token). Keys are visited in tiles of 64: each invocation scores
// one key of the tile, then every invocation folds the tile into its own output dimensions
// (d = lid, lid + 64, ...; hd <= 256) with the running max / sum rescaling. Token t sits at
// position pos0 + t and sees keys 0 ..= pos0 + t. Nothing is larger than a tile in workgroup
// memory, so any context length fits the browser's 16 KiB limit.

struct Params {
    t: u32,
    n_head: u32,
    n_kv: u32,
    hd: u32,
    ctx: u32,
    pos0: u32,
    scale: f32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> Q: array<f32>;
@group(0) @binding(1) var<storage, read_write> KC: array<f32>;
@group(0) @binding(2) var<storage, read_write> VC: array<f32>;
@group(0) @binding(3) var<storage, read_write> O: array<f32>;
@group(0) @binding(4) var<uniform> P: Params;

const NEG: f32 = -3.0e38;

var<workgroup> qs: array<f32, 256>;
var<workgroup> sc: array<f32, 64>;
var<workgroup> n_keys_shared: u32;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let wg = wid.x + wid.y * nwg.x;
    let h = wg / P.t;
    let t = wg % P.t;
    let hd = P.hd;
    let kvh = h / (P.n_head / P.n_kv);
    // Every binding is read_write (cubecl may sub-allocate several of our buffers from one
    // wgpu buffer, and one buffer cannot be both read-only and writable in a dispatch), so P's
    // values count as non-uniform; the loop below holds barriers and needs a uniform bound.
    if (lid == 0u) { n_keys_shared = P.pos0 + t + 1u; }
    let n_keys = workgroupUniformLoad(&n_keys_shared);
    let kv0 = kvh * P.ctx * hd;

    for (var i = lid; i < hd; i += 64u) {
        qs[i] = Q[(h * P.t + t) * hd + i] * P.scale;
    }
    workgroupBarrier();

    var m = NEG;
    var l = 0.0;
    var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
    for (var j0 = 0u; j0 < n_keys; j0 += 64u) {
        let j = j0 + lid;
        var s = NEG;
        if (j < n_keys) {
            s = 0.0;
            let k0 = kv0 + j * hd;
            for (var i = 0u; i < hd; i++) { s += qs[i] * KC[k0 + i]; }
        }
        sc[lid] = s;
        workgroupBarrier();
        let nvalid = min(64u, n_keys - j0);
        var mt = m;
        for (var i = 0u; i < nvalid; i++) { mt = max(mt, sc[i]); }
        workgroupBarrier();
        // Each invocation turns its own score into a weight once; all then share them.
        sc[lid] = exp(s - mt);
        workgroupBarrier();
        let corr = exp(m - mt);
        l *= corr;
        for (var r = 0u; r < 4u; r++) { acc[r] *= corr; }
        for (var i = 0u; i < nvalid; i++) {
            let p = sc[i];
            l += p;
            let v0 = kv0 + (j0 + i) * hd;
            for (var r = 0u; r < 4u; r++) {
                let d = lid + r * 64u;
                if (d < hd) { acc[r] += p * VC[v0 + d]; }
            }
        }
        m = mt;
        workgroupBarrier();
    }
    for (var r = 0u; r < 4u; r++) {
        let d = lid + r * 64u;
        if (d < hd && h < P.n_head) {
            O[t * P.n_head * hd + h * hd + d] = acc[r] / l;
        }
    }
}
