//! The GGUF header reader must refuse every malformed-input class of notes/formats.md (1–10) with
//! its own error variant, never panic, and read the real model. A tiny GGUF writer below builds a
//! valid file; each test breaks one thing.

use aigc::gguf::{Array, GgufError, GgufFile, Value};
use aigc::quant::GgmlType;

// ---------------------------------------------------------------- a minimal GGUF writer

#[derive(Clone)]
struct Kv {
    key: Vec<u8>,
    ty: u32,
    payload: Vec<u8>,
}

#[derive(Clone)]
struct Ti {
    name: Vec<u8>,
    dims: Vec<u64>,
    ty: u32,
    /// Relative offset; `None` = next aligned position after the previous tensor.
    offset: Option<u64>,
}

#[derive(Clone)]
struct Builder {
    magic: [u8; 4],
    version: u32,
    n_tensors: Option<u64>,
    n_kv: Option<u64>,
    kvs: Vec<Kv>,
    tensors: Vec<Ti>,
    /// Alignment the writer pads to (independent of what `general.alignment` says).
    align: u64,
    /// Override the data section length (default: up to the end of the last tensor).
    data_len: Option<u64>,
}

struct Built {
    bytes: Vec<u8>,
    header_end: usize,
}

fn gstr(s: &[u8]) -> Vec<u8> {
    let mut v = (s.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(s);
    v
}

fn arr(elem_ty: u32, count: u64, elems: &[u8]) -> Vec<u8> {
    let mut v = elem_ty.to_le_bytes().to_vec();
    v.extend(count.to_le_bytes());
    v.extend_from_slice(elems);
    v
}

fn tensor_bytes(ty: u32, dims: &[u64]) -> u64 {
    let Some(t) = GgmlType::from_id(ty) else { return 32 };
    let row = dims.first().and_then(|&d| t.row_bytes(d)).unwrap_or(0);
    dims.iter().skip(1).try_fold(row, |a, &d| a.checked_mul(d)).unwrap_or(0)
}

impl Builder {
    fn kv(&mut self, key: &str, ty: u32, payload: Vec<u8>) -> &mut Self {
        self.kvs.retain(|k| k.key != key.as_bytes());
        self.kvs.push(Kv { key: key.as_bytes().to_vec(), ty, payload });
        self
    }
    fn tensor(&mut self, name: &str, dims: &[u64], ty: GgmlType) -> &mut Self {
        self.tensors.push(Ti { name: name.as_bytes().to_vec(), dims: dims.to_vec(), ty: ty.id(), offset: None });
        self
    }
    fn t(&mut self, name: &str) -> &mut Ti {
        self.tensors.iter_mut().find(|t| t.name == name.as_bytes()).expect("no such tensor")
    }
    fn k(&mut self, key: &str) -> &mut Kv {
        self.kvs.iter_mut().find(|k| k.key == key.as_bytes()).expect("no such key")
    }

    fn build(&self) -> Built {
        let mut b = self.magic.to_vec();
        b.extend(self.version.to_le_bytes());
        b.extend(self.n_tensors.unwrap_or(self.tensors.len() as u64).to_le_bytes());
        b.extend(self.n_kv.unwrap_or(self.kvs.len() as u64).to_le_bytes());
        for kv in &self.kvs {
            b.extend(gstr(&kv.key));
            b.extend(kv.ty.to_le_bytes());
            b.extend(&kv.payload);
        }
        let mut cursor = 0u64;
        let mut data_end = 0u64;
        for t in &self.tensors {
            let size = tensor_bytes(t.ty, &t.dims);
            let offset = t.offset.unwrap_or(cursor.next_multiple_of(self.align));
            cursor = offset.saturating_add(size);
            if t.offset.is_none() {
                data_end = data_end.max(cursor);
            }
            b.extend(gstr(&t.name));
            b.extend((t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                b.extend(d.to_le_bytes());
            }
            b.extend(t.ty.to_le_bytes());
            b.extend(offset.to_le_bytes());
        }
        let header_end = b.len();
        b.resize(header_end.next_multiple_of(self.align as usize), 0);
        let data_len = self.data_len.unwrap_or(data_end.min(1 << 20)); // huge tensors: short file
        b.extend((0..data_len).map(|i| (i * 7 % 251) as u8));
        Built { bytes: b, header_end }
    }
    fn bytes(&self) -> Vec<u8> {
        self.build().bytes
    }
    fn parse(&self) -> Result<GgufFile, GgufError> {
        let b = self.bytes();
        GgufFile::parse(&b, b.len() as u64)
    }
}

fn base() -> Builder {
    let mut g = Builder { magic: *b"GGUF", version: 3, n_tensors: None, n_kv: None, kvs: vec![], tensors: vec![], align: 32, data_len: None, };
    let strs: Vec<u8> = [&b"a"[..], b"b", b"<s>"].iter().flat_map(|s| gstr(s)).collect();
    let f32s: Vec<u8> = [0.0f32, -1.0, -2.0].iter().flat_map(|x| x.to_le_bytes()).collect();
    let i32s: Vec<u8> = [1i32, 1, 3].iter().flat_map(|x| x.to_le_bytes()).collect();
    g.kv("general.architecture", 8, gstr(b"llama"))
        .kv("llama.block_count", 4, 1u32.to_le_bytes().to_vec())
        .kv("llama.context_length", 10, 128u64.to_le_bytes().to_vec())
        .kv("llama.rope.freq_base", 6, 10000f32.to_le_bytes().to_vec())
        .kv("test.u8", 0, vec![7])
        .kv("test.i8", 1, vec![0xFD])
        .kv("test.u16", 2, 500u16.to_le_bytes().to_vec())
        .kv("test.i16", 3, (-500i16).to_le_bytes().to_vec())
        .kv("test.i32", 5, (-5i32).to_le_bytes().to_vec())
        .kv("test.i64", 11, 1i64.to_le_bytes().to_vec())
        .kv("test.f64", 12, 0.5f64.to_le_bytes().to_vec())
        .kv("test.bool", 7, vec![1])
        .kv("test.bools", 9, arr(7, 2, &[1, 0]))
        .kv("test.u32s", 9, arr(4, 2, &[1, 0, 0, 0, 2, 0, 0, 0]))
        .kv("tokenizer.ggml.tokens", 9, arr(8, 3, &strs))
        .kv("tokenizer.ggml.scores", 9, arr(6, 3, &f32s))
        .kv("tokenizer.ggml.token_type", 9, arr(5, 3, &i32s));
    g.tensor("token_embd.weight", &[32, 3], GgmlType::Q8_0)
        .tensor("blk.0.attn_q.weight", &[64, 2], GgmlType::Q4_1)
        .tensor("blk.0.ffn_down.weight", &[256, 1], GgmlType::Q4_K)
        .tensor("blk.0.ffn_up.weight", &[256], GgmlType::Q6_K)
        .tensor("blk.0.attn_norm.weight", &[16, 1, 1, 1], GgmlType::F16)
        .tensor("output_norm.weight", &[32], GgmlType::F32);
    g
}

macro_rules! assert_err {
    ($r:expr, $p:pat $(if $g:expr)?) => {{
        let r = $r;
        assert!(matches!(r, Err($p) $(if $g)?), "expected {}, got {:?}", stringify!($p), r.as_ref().map(|f| f.tensors.len()));
    }};
}

// ---------------------------------------------------------------- the valid file

#[test]
fn valid_file_parses() {
    let built = base().build();
    let f = GgufFile::parse(&built.bytes, built.bytes.len() as u64).unwrap();
    assert_eq!((f.version, f.metadata.len(), f.tensors.len(), f.alignment), (3, 17, 6, 32));
    assert_eq!(f.data_offset, (built.header_end as u64).next_multiple_of(32));
    assert_eq!(f.header_bytes(), f.data_offset);
    assert_eq!(f.metadata[0].0, "general.architecture");
    assert_eq!(f.get_str("general.architecture").unwrap(), Some("llama"));
    assert_eq!(f.get_u64("llama.block_count").unwrap(), Some(1));
    assert_eq!(f.get_u64("llama.context_length").unwrap(), Some(128));
    assert_eq!(f.get_u64("test.u16").unwrap(), Some(500));
    assert_eq!(f.get_f32("llama.rope.freq_base").unwrap(), Some(10000.0));
    assert_eq!(f.get_f32("test.f64").unwrap(), Some(0.5));
    assert_eq!(f.get_f32("test.i16").unwrap(), Some(-500.0));
    assert_eq!(f.get_bool("test.bool").unwrap(), Some(true));
    assert_eq!(f.get("test.i8"), Some(&Value::I8(-3)));
    assert_eq!(f.get("test.bools"), Some(&Value::Array(Array::Bool(vec![true, false]))));
    assert_eq!(f.get_str_array("tokenizer.ggml.tokens").unwrap().unwrap(), ["a", "b", "<s>"]);
    assert_eq!(f.get_f32_array("tokenizer.ggml.scores").unwrap().unwrap(), [0.0, -1.0, -2.0]);
    assert_eq!(f.get_i32_array("tokenizer.ggml.token_type").unwrap(), Some(vec![1, 1, 3]));
    assert_eq!(f.get_i32_array("test.u32s").unwrap(), Some(vec![1, 2]));
    assert_eq!(f.get_str("missing").unwrap(), None);
    assert_eq!(f.get_u64("missing").unwrap(), None);
    // Present with another type (or a negative integer): WrongType.
    assert!(matches!(f.get_str("llama.block_count"), Err(GgufError::WrongType { .. })));
    assert!(matches!(f.get_u64("test.i32"), Err(GgufError::WrongType { .. })));
    assert!(matches!(f.get_u64("test.i8"), Err(GgufError::WrongType { .. })));
    assert!(matches!(f.get_bool("test.u8"), Err(GgufError::WrongType { .. })));
    assert!(matches!(f.get_f32("general.architecture"), Err(GgufError::WrongType { .. })));
    assert!(matches!(f.get_f32_array("tokenizer.ggml.token_type"), Err(GgufError::WrongType { .. })));
    assert!(matches!(f.get_str_array("tokenizer.ggml.scores"), Err(GgufError::WrongType { .. })));
    assert!(matches!(f.get_i32_array("tokenizer.ggml.tokens"), Err(GgufError::WrongType { .. })));

    let e = f.tensor("token_embd.weight").unwrap();
    assert_eq!((e.dims.as_slice(), e.ty, e.n_elements, e.n_bytes), (&[32u64, 3][..], GgmlType::Q8_0, 96, 102));
    assert_eq!(e.offset, f.data_offset); // absolute
    assert_eq!(e.n_rows(), 3);
    let q = f.tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!((q.offset, q.n_bytes), (f.data_offset + 128, 80));
    assert!(f.tensor("output.weight").is_none());
    let last = f.tensors.last().unwrap();
    assert_eq!(last.offset + last.n_bytes, built.bytes.len() as u64, "the last tensor ends the file");
    for t in &f.tensors {
        assert_eq!(t.offset % 32, 0);
    }
    // v2 has the same layout.
    let mut g = base();
    g.version = 2;
    assert_eq!(g.parse().unwrap().version, 2);
}

// ---------------------------------------------------------------- class 1: truncation

#[test]
fn truncated_at_every_byte() {
    let b = base().bytes();
    assert!(GgufFile::parse(&b, b.len() as u64).is_ok());
    // A cut file shows up as a short read, a tensor past the end, or counts that cannot fit in the
    // bytes left (checked before anything is read or allocated).
    let mut seen = [0usize; 3];
    for n in 0..b.len() {
        match GgufFile::parse(&b[..n], n as u64) {
            Err(GgufError::Truncated { .. }) => seen[0] += 1,
            Err(GgufError::TensorPastEof { .. }) => seen[1] += 1,
            Err(GgufError::CountTooLarge { .. }) => seen[2] += 1,
            r => panic!("prefix of {n}/{} bytes: {:?}", b.len(), r),
        }
    }
    assert!(seen.iter().all(|&k| k > 0), "{seen:?}");
    // Data one byte short is TensorPastEof specifically.
    let r = GgufFile::parse(&b[..b.len() - 1], b.len() as u64 - 1);
    assert!(matches!(r, Err(GgufError::TensorPastEof { ref tensor, .. }) if tensor == "output_norm.weight"));
    assert!(matches!(GgufFile::parse(&[], 0), Err(GgufError::Truncated { .. })));
}

#[test]
fn short_prefix_asks_for_more() {
    let built = base().build();
    let (b, len) = (&built.bytes, built.bytes.len() as u64);
    let full = GgufFile::parse(b, len).unwrap();
    for n in 0..b.len() {
        match GgufFile::parse(&b[..n], len) {
            Ok(f) => {
                assert!(n >= built.header_end, "Ok from a {n}-byte prefix, header is {}", built.header_end);
                assert_eq!(f, full);
            }
            Err(GgufError::NeedMoreHeader { have, at_least }) => {
                assert!(n < built.header_end);
                assert_eq!(have, n as u64);
                assert!(at_least > have && at_least <= built.header_end as u64, "n {n}: at_least {at_least}");
            }
            Err(e) => panic!("prefix {n}: {e:?}"),
        }
    }
    // Following the hint converges.
    let mut have = 0usize;
    for _ in 0..200 {
        match GgufFile::parse(&b[..have], len) {
            Ok(f) => return assert_eq!(f, full),
            Err(GgufError::NeedMoreHeader { at_least, .. }) => have = at_least as usize,
            Err(e) => panic!("{e:?}"),
        }
    }
    panic!("did not converge");
}

#[test]
fn prefix_longer_than_file() {
    let b = base().bytes();
    assert_err!(GgufFile::parse(&b, 10), GgufError::PrefixLongerThanFile { .. });
}

// ---------------------------------------------------------------- class 2: magic and version

#[test]
fn bad_magic() {
    for m in [*b"GGUL", *b"gguf", [0; 4], *b"FUGG", *b"GGML"] {
        let mut g = base();
        g.magic = m;
        assert_err!(g.parse(), GgufError::BadMagic { .. });
    }
}

#[test]
fn bad_versions() {
    for v in [0u32, 1, 4, 0xFFFF_FFFF, 0x0001_0003] {
        let mut g = base();
        g.version = v;
        assert_err!(g.parse(), GgufError::UnsupportedVersion { .. });
    }
    for v in [0x0300_0000u32, 0x0200_0000, 0x0001_0000] {
        let mut g = base();
        g.version = v;
        assert_err!(g.parse(), GgufError::ByteSwapped { .. });
    }
}

// ---------------------------------------------------------------- class 3: counts

#[test]
fn huge_counts() {
    for (nt, nkv) in [(Some(u64::MAX), None), (None, Some(u64::MAX)), (Some(1 << 20), None), (None, Some(1 << 20)), (Some(100), None), (None, Some(500)), (Some(40), Some(60))] {
        let mut g = base();
        (g.n_tensors, g.n_kv) = (nt, nkv);
        assert_err!(g.parse(), GgufError::CountTooLarge { .. });
    }
    for count in [u64::MAX, 1 << 40, 1 << 25, 100_000] {
        let mut g = base();
        g.kv("test.big", 9, arr(4, count, &[0; 8]));
        assert_err!(g.parse(), GgufError::CountTooLarge { what: "array length", .. });
        g.kv("test.big", 9, arr(8, count, &gstr(b"x")));
        assert_err!(g.parse(), GgufError::CountTooLarge { what: "array length", .. });
    }
    // A string length over the cap is refused before reading (or allocating) it.
    for len in [u64::MAX, 1 << 21] {
        let mut g = base();
        let mut p = len.to_le_bytes().to_vec();
        p.extend(b"abc");
        g.kv("test.s", 8, p);
        assert_err!(g.parse(), GgufError::StringTooLong { .. });
    }
    let mut g = base();
    g.kvs[0].key = vec![b'k'; (1 << 20) + 1];
    assert_err!(g.parse(), GgufError::StringTooLong { what: "metadata key", .. });
}

// ---------------------------------------------------------------- class 4: strings and keys

#[test]
fn strings_past_eof_bad_utf8_empty_duplicate_keys() {
    // A string value whose (allowed) length runs past the end of the file.
    let mut g = base();
    g.tensors.clear();
    let mut p = 5000u64.to_le_bytes().to_vec();
    p.extend(b"short");
    g.kv("test.s", 8, p);
    assert_err!(g.parse(), GgufError::Truncated { what: "string value", .. });
    // Invalid UTF-8 in a key, a value and an array element.
    let mut g = base();
    g.kvs[1].key = b"llama.\xFF\xFEcount".to_vec();
    assert_err!(g.parse(), GgufError::InvalidUtf8 { what: "metadata key", .. });
    let mut g = base();
    g.kv("test.s", 8, gstr(b"\xC3\x28"));
    assert_err!(g.parse(), GgufError::InvalidUtf8 { what: "string value", .. });
    let mut g = base();
    let strs: Vec<u8> = [&b"ok"[..], b"\xED\xA0\x80"].iter().flat_map(|s| gstr(s)).collect(); // a surrogate
    g.kv("test.strs", 9, arr(8, 2, &strs));
    assert_err!(g.parse(), GgufError::InvalidUtf8 { what: "array string", .. });
    // Empty key.
    let mut g = base();
    g.kvs[3].key.clear();
    assert_err!(g.parse(), GgufError::EmptyKey { index: 3 });
    // Duplicate key.
    let mut g = base();
    let dup = g.kvs[2].clone();
    g.kvs.push(dup);
    assert_err!(g.parse(), GgufError::DuplicateKey { ref key } if key == "llama.context_length");
}

// ---------------------------------------------------------------- class 5: value types

#[test]
fn bad_value_types() {
    for ty in [13u32, 100, u32::MAX] {
        let mut g = base();
        g.k("llama.block_count").ty = ty;
        assert_err!(g.parse(), GgufError::UnknownValueType { .. });
        let mut g = base();
        g.kv("test.a", 9, arr(ty, 1, &[0; 8]));
        assert_err!(g.parse(), GgufError::UnknownValueType { .. });
    }
    let mut g = base();
    g.kv("test.nested", 9, arr(9, 1, &arr(4, 1, &[0; 4])));
    assert_err!(g.parse(), GgufError::NestedArray { .. });
    let mut g = base();
    g.k("test.bool").payload = vec![2];
    assert_err!(g.parse(), GgufError::InvalidBool { byte: 2, .. });
    let mut g = base();
    g.kv("test.bools", 9, arr(7, 3, &[0, 1, 0xFF]));
    assert_err!(g.parse(), GgufError::InvalidBool { byte: 0xFF, .. });
}

// ---------------------------------------------------------------- class 6: alignment

#[test]
fn alignment_checks() {
    let wrong_types: [(u32, Vec<u8>); 4] =
        [(10, 32u64.to_le_bytes().to_vec()), (5, 32i32.to_le_bytes().to_vec()), (8, gstr(b"32")), (2, 32u16.to_le_bytes().to_vec())];
    for (ty, payload) in wrong_types {
        let mut g = base();
        g.kv("general.alignment", ty, payload);
        assert_err!(g.parse(), GgufError::AlignmentWrongType { .. });
    }
    for a in [0u32, 3, 48, 0xFFFF_FFFF] {
        let mut g = base();
        g.kv("general.alignment", 4, a.to_le_bytes().to_vec());
        assert_err!(g.parse(), GgufError::BadAlignment { .. });
    }
    for a in [1u32, 8, 64, 4096] {
        let mut g = base();
        g.align = a as u64;
        g.kv("general.alignment", 4, a.to_le_bytes().to_vec());
        let f = g.parse().unwrap();
        assert_eq!((f.alignment, f.data_offset % a as u64), (a as u64, 0));
    }
}

// ---------------------------------------------------------------- class 7: tensor names

#[test]
fn tensor_names() {
    let mut g = base();
    g.tensors[1].name.clear();
    assert_err!(g.parse(), GgufError::EmptyTensorName { index: 1 });
    let mut g = base();
    g.tensors[1].name = vec![b'x'; 129];
    assert_err!(g.parse(), GgufError::TensorNameTooLong { len: 129, .. });
    let mut g = base();
    g.tensors[1].name = vec![b'x'; 128];
    assert!(g.parse().is_ok());
    let mut g = base();
    g.tensors[2].name = g.tensors[0].name.clone();
    assert_err!(g.parse(), GgufError::DuplicateTensor { ref name } if name == "token_embd.weight");
    let mut g = base();
    g.tensors[2].name = b"blk.\xFF".to_vec();
    assert_err!(g.parse(), GgufError::InvalidUtf8 { what: "tensor name", .. });
}

// ---------------------------------------------------------------- class 8: dimensions

#[test]
fn dims() {
    for dims in [vec![], vec![32, 1, 1, 1, 1]] {
        let mut g = base();
        g.t("output_norm.weight").dims = dims;
        assert_err!(g.parse(), GgufError::BadDimCount { .. });
    }
    for dims in [vec![0u64], vec![32, 0], vec![32, 1 << 63], vec![u64::MAX]] {
        let mut g = base();
        g.t("output_norm.weight").dims = dims;
        assert_err!(g.parse(), GgufError::BadDim { .. });
    }
    // Element count or byte size overflowing u64 / i64 at some step.
    for dims in [vec![1u64 << 32, 1 << 32], vec![1 << 62, 2], vec![1 << 62], vec![1 << 31, 1 << 31, 4, 1], vec![1 << 40, 1 << 20, 1 << 4]] {
        let mut g = base();
        g.t("output_norm.weight").dims = dims.clone();
        assert_err!(g.parse(), GgufError::SizeOverflow { .. });
    }
    // ne[0] not a multiple of the block size.
    for (name, ne0) in [("token_embd.weight", 31u64), ("blk.0.ffn_down.weight", 32), ("blk.0.attn_q.weight", 48)] {
        let mut g = base();
        g.t(name).dims[0] = ne0;
        assert_err!(g.parse(), GgufError::NotBlockMultiple { .. });
    }
    // A huge but representable tensor is a size problem, not a header problem: TensorPastEof.
    let mut g = base();
    g.t("output_norm.weight").dims = vec![1 << 40];
    assert_err!(g.parse(), GgufError::TensorPastEof { .. });
}

// ---------------------------------------------------------------- class 9: type ids

#[test]
fn type_ids() {
    for id in [42u32, 99, 1000, u32::MAX] {
        let mut g = base();
        g.t("blk.0.attn_q.weight").ty = id;
        assert_err!(g.parse(), GgufError::UnknownType { .. });
    }
    for (id, name) in [(16u32, "IQ2_XXS"), (10, "Q2_K"), (9, "Q8_1"), (26, "I32"), (39, "MXFP4"), (34, "TQ1_0"), (4, "Q4_2 (removed)"), (31, "Q4_0_4_4 (removed)")] {
        let mut g = base();
        g.t("blk.0.attn_q.weight").ty = id;
        let err = g.parse().unwrap_err();
        assert!(matches!(&err, GgufError::UnsupportedType { name: n, tensor, id: i } if n == name && tensor == "blk.0.attn_q.weight" && *i == id), "{err:?}");
        if id == 16 {
            assert_eq!(err.to_string(), "tensor blk.0.attn_q.weight uses IQ2_XXS, which aigc does not implement (ggml type 16)");
        }
    }
    // Every implemented type parses.
    for ty in [GgmlType::BF16, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q5_K] {
        let mut g = base();
        g.tensor("extra", &[256, 2], ty);
        assert_eq!(g.parse().unwrap().tensor("extra").unwrap().ty, ty);
    }
}

// ---------------------------------------------------------------- class 10: offsets

#[test]
fn offsets() {
    let mut g = base();
    g.t("output_norm.weight").offset = Some(16 + 512); // not a multiple of 32
    assert_err!(g.parse(), GgufError::UnalignedOffset { offset: 528, .. });
    let mut g = base();
    g.t("blk.0.attn_q.weight").offset = Some(0); // on top of token_embd
    assert_err!(g.parse(), GgufError::TensorOverlap { .. });
    let mut g = base();
    g.t("blk.0.ffn_up.weight").offset = Some(96); // token_embd spans 0..102
    assert_err!(g.parse(), GgufError::TensorOverlap { ref first, ref second } if first == "token_embd.weight" && second == "blk.0.ffn_up.weight");
    let mut g = base();
    g.t("output_norm.weight").offset = Some(1 << 20);
    assert_err!(g.parse(), GgufError::TensorPastEof { .. });
    // data_offset + offset overflows, and offset + n_bytes overflows.
    let d = base().parse().unwrap().data_offset;
    for off in [u64::MAX - 31, u64::MAX - 1023, (u64::MAX - d - 60) / 32 * 32] {
        let mut g = base();
        g.t("output_norm.weight").offset = Some(off);
        assert_err!(g.parse(), GgufError::OffsetOverflow { .. });
    }
    // Out-of-order but disjoint tensors are fine.
    let mut g = base();
    let f0 = g.parse().unwrap();
    for (t, t0) in g.tensors.iter_mut().zip(&f0.tensors) {
        t.offset = Some(t0.offset - f0.data_offset);
    }
    g.tensors.reverse();
    g.data_len = Some(f0.file_len - f0.data_offset);
    let f = g.parse().unwrap();
    assert_eq!(f.tensors[0].name, "output_norm.weight");
    assert_eq!(f.tensor("token_embd.weight").unwrap().offset, f.data_offset);
    assert_eq!(f.file_len, f0.file_len);
    // Header padding missing (file ends right after the tensor infos).
    let built = base().build();
    let b = &built.bytes[..built.header_end];
    assert_ne!(b.len() % 32, 0, "test needs a header that is not a multiple of 32");
    assert_err!(GgufFile::parse(b, b.len() as u64), GgufError::Truncated { what: "header padding", .. });
}

// ---------------------------------------------------------------- random mutations: never panic

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn check_invariants(f: &GgufFile) {
    let mut spans: Vec<_> = f.tensors.iter().map(|t| (t.offset, t.offset + t.n_bytes)).collect();
    spans.sort();
    for t in &f.tensors {
        assert!(t.offset >= f.data_offset && t.offset + t.n_bytes <= f.file_len && t.offset % f.alignment == 0);
        assert!((1..=4).contains(&t.dims.len()) && !t.name.is_empty() && t.name.len() <= 64);
        assert_eq!(t.dims.iter().product::<u64>(), t.n_elements);
    }
    assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0));
    assert!(f.data_offset <= f.file_len);
}

#[test]
fn random_mutations_never_panic() {
    let built = base().build();
    let (orig, header_end) = (built.bytes, built.header_end);
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let interesting: [u64; 10] = [0, 1, 2, 9, 31, 32, 0xFF, 1 << 31, 1 << 63, u64::MAX];
    let (mut ok, mut err) = (0, 0);
    for _ in 0..6000 {
        let mut b = orig.clone();
        for _ in 0..1 + rng.below(4) {
            let pos = rng.below(header_end + 8);
            match rng.below(6) {
                0 => {
                    if let Some(x) = b.get_mut(pos) {
                        *x ^= 1 << rng.below(8);
                    }
                }
                1 => {
                    if let Some(x) = b.get_mut(pos) {
                        *x = rng.next() as u8;
                    }
                }
                2 | 3 => {
                    let v = interesting[rng.below(interesting.len())].wrapping_add(rng.below(3) as u64);
                    let w = if rng.below(2) == 0 { 8 } else { 4 };
                    for (i, byte) in v.to_le_bytes().iter().take(w).enumerate() {
                        if let Some(x) = b.get_mut(pos + i) {
                            *x = *byte;
                        }
                    }
                }
                4 => b.truncate(rng.below(orig.len() + 1)),
                _ => {
                    let len = rng.below(16);
                    let chunk: Vec<u8> = b.iter().skip(pos).take(len).copied().collect();
                    let at = rng.below(b.len() + 1);
                    b.splice(at..at, chunk);
                }
            }
        }
        let len = b.len() as u64;
        match GgufFile::parse(&b, len) {
            Ok(f) => {
                check_invariants(&f);
                ok += 1;
            }
            Err(e) => {
                assert!(!matches!(e, GgufError::NeedMoreHeader { .. }), "NeedMoreHeader with the whole file");
                let _ = e.to_string();
                err += 1;
            }
        }
        let cut = rng.below(b.len() + 1);
        let _ = GgufFile::parse(&b[..cut], len);
    }
    assert!(ok > 100 && err > 1000, "mutations too weak or too strong: {ok} ok, {err} err");
}

// ---------------------------------------------------------------- the real model

const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/SmolLM2-135M-Instruct.Q4_1.gguf");

fn read_prefix(n: u64) -> (Vec<u8>, u64) {
    use std::io::Read;
    let file = std::fs::File::open(MODEL).unwrap_or_else(|e| panic!("{MODEL}: {e}: run ./build.sh setup to fetch the model"));
    let len = file.metadata().unwrap().len();
    let mut buf = Vec::new();
    file.take(n).read_to_end(&mut buf).unwrap();
    (buf, len)
}

#[test]
fn real_model_header() {
    let (prefix, len) = read_prefix(1 << 20);
    assert_eq!(len, 98_362_432);
    let mut have = match GgufFile::parse(&prefix, len) {
        Err(GgufError::NeedMoreHeader { have, at_least }) => {
            assert_eq!(have, 1 << 20);
            assert!(at_least > have && at_least <= 1_785_664);
            at_least.max(2 * have)
        }
        other => panic!("expected NeedMoreHeader from 1 MiB, got {:?}", other.map(|f| f.tensors.len())),
    };
    let f = loop {
        let (prefix, _) = read_prefix(have);
        match GgufFile::parse(&prefix, len) {
            Ok(f) => break f,
            Err(GgufError::NeedMoreHeader { at_least, .. }) => have = at_least.max(2 * have).min(len),
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!((f.version, f.tensors.len(), f.metadata.len(), f.alignment), (3, 272, 33, 32));
    assert_eq!(f.data_offset, 1_785_664);
    assert_eq!(f.file_len, len);
    assert_eq!(f.get_str("general.architecture").unwrap(), Some("llama"));
    let count = |ty| f.tensors.iter().filter(|t| t.ty == ty).count();
    assert_eq!((count(GgmlType::Q4_1), count(GgmlType::Q8_0), count(GgmlType::F32)), (210, 1, 61));
    let e = f.tensor("token_embd.weight").unwrap();
    assert_eq!((e.ty, e.dims.as_slice(), e.offset, e.n_bytes), (GgmlType::Q8_0, &[576u64, 49152][..], 1_785_664, 30_081_024));
    assert!(f.tensor("output.weight").is_none(), "tied embeddings");
    let q = f.tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!((q.ty, q.dims.as_slice(), q.n_bytes), (GgmlType::Q4_1, &[576u64, 576][..], 576 * 576 / 32 * 20));
    let u = |k: &str| f.get_u64(k).unwrap().unwrap_or_else(|| panic!("{k}"));
    assert_eq!(
        [u("llama.block_count"), u("llama.context_length"), u("llama.embedding_length"), u("llama.feed_forward_length")],
        [30, 8192, 576, 1536]
    );
    assert_eq!([u("llama.attention.head_count"), u("llama.attention.head_count_kv"), u("tokenizer.ggml.bos_token_id"), u("tokenizer.ggml.eos_token_id")], [9, 3, 1, 2]);
    assert_eq!(f.get_f32("llama.rope.freq_base").unwrap(), Some(100000.0));
    assert_eq!(f.get_f32("llama.attention.layer_norm_rms_epsilon").unwrap(), Some(1e-5));
    assert_eq!(f.get_str("tokenizer.ggml.model").unwrap(), Some("gpt2"));
    assert_eq!(f.get_str("tokenizer.ggml.pre").unwrap(), Some("smollm"));
    assert_eq!(f.get_bool("tokenizer.ggml.add_bos_token").unwrap(), Some(false));
    let tokens = f.get_str_array("tokenizer.ggml.tokens").unwrap().unwrap();
    assert_eq!((tokens.len(), tokens[1].as_str(), tokens[2].as_str()), (49152, "<|im_start|>", "<|im_end|>"));
    assert_eq!(f.get_str_array("tokenizer.ggml.merges").unwrap().unwrap().len(), 48900);
    assert_eq!(f.get_i32_array("tokenizer.ggml.token_type").unwrap().unwrap().len(), 49152);
    assert!(f.get_str("tokenizer.chat_template").unwrap().unwrap().contains("<|im_start|>"));
    let end = f.tensors.iter().map(|t| t.offset + t.n_bytes).max().unwrap();
    assert!(end <= len);
}
