//! A hardened reader for GGUF v2/v3 headers: metadata key/values and tensor infos.
//!
//! [`GgufFile::parse`] takes a *prefix* of the file plus the whole file's length, so the caller can
//! read the header without loading the weights; if the header runs past the prefix it returns
//! [`GgufError::NeedMoreHeader`] and the caller retries with a longer prefix. Everything read is
//! untrusted, and every malformed-input class of `notes/formats.md` (1–10) has its own variant:
//! - every count (tensors, keys, array length) is bounded by a cap and by the bytes left in the
//!   *file* before anything is allocated; strings are capped at [`MAX_STRING_LEN`] bytes (tensor
//!   names at [`MAX_TENSOR_NAME_LEN`]); all size arithmetic is checked;
//! - keys and tensor names must be non-empty, UTF-8 and unique; bools must be 0 or 1; arrays are typed
//!   and may not nest; `general.alignment` must be a u32 power of two;
//! - tensors: 1..=4 dims, each in 1..=i64::MAX, element and byte counts that fit, `ne[0]` a multiple of
//!   the block size, an implemented type, aligned offsets, data inside the file, no two overlapping.
//!   Unlike ggml we do not require tensors to be packed in file order, only to be disjoint.
//!
//! Decisions: this reader never looks at tensor data, so NaN/Inf in f16 scales (class 13) is left to
//! whoever reads the data. Memory/GPU budgets (class 15) are the loader's job: it has `n_bytes` for every
//! tensor before allocating. Ids ggml once had but removed (4, 5, 31–33, 36–38) and ids ggml has but
//! aigc does not implement give [`GgufError::UnsupportedType`]; ids ggml never had give
//! [`GgufError::UnknownType`]. A file with zero tensors may omit the padding after its header.

use std::collections::HashSet;

use crate::quant::{ggml_type_name, GgmlType};

pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Cap on any string (keys, values, array elements): chat templates are tens of KiB.
pub const MAX_STRING_LEN: u64 = 1 << 20;
/// Cap on tensor names: ggml's `GGML_MAX_NAME` as stable-diffusion.cpp builds it (128; the default 64
/// is too short for original SD names like `model.diffusion_model.output_blocks.…`).
pub const MAX_TENSOR_NAME_LEN: u64 = 128;
pub const MAX_TENSORS: u64 = 1 << 16;
pub const MAX_KV: u64 = 1 << 16;
/// Cap on array elements (vocabularies are ≤ a few hundred thousand entries).
pub const MAX_ARRAY_LEN: u64 = 1 << 24;
/// Smallest possible key/value: key length (8) + 1-byte key + value type (4) + 1-byte value.
const MIN_KV_BYTES: u64 = 14;
/// Smallest possible tensor info: name length + 1-byte name + n_dims + one dim + type + offset.
const MIN_TENSOR_INFO_BYTES: u64 = 33;

/// Everything wrong a GGUF header can be. Each malformed-input class has its own variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GgufError {
    #[error("prefix of {prefix} bytes is longer than the file length {file_len}")]
    PrefixLongerThanFile { prefix: u64, file_len: u64 },
    #[error("file truncated: {what} needs bytes {at}..{end} but the file has {file_len}")]
    Truncated { what: &'static str, at: u64, end: u64, file_len: u64 },
    /// Not an error in the file: read a prefix of at least `at_least` bytes (better
    /// `max(at_least, 2 * have)`, clamped to the file length) and parse again.
    #[error("header continues past the {have} bytes read (need at least {at_least})")]
    NeedMoreHeader { have: u64, at_least: u64 },
    #[error("not a GGUF file (magic {found:02x?})")]
    BadMagic { found: [u8; 4] },
    #[error("big-endian (byte-swapped) GGUF file (version field {raw:#010x}); only little-endian is supported")]
    ByteSwapped { raw: u32 },
    #[error("GGUF version {version} is not supported (only 2 and 3)")]
    UnsupportedVersion { version: u32 },
    #[error("{what} {count} exceeds the limit {limit}")]
    CountTooLarge { what: &'static str, count: u64, limit: u64 },
    #[error("{what} of {len} bytes exceeds the limit {max}")]
    StringTooLong { what: &'static str, len: u64, max: u64 },
    #[error("{what} at byte {at} is not valid UTF-8")]
    InvalidUtf8 { what: &'static str, at: u64 },
    #[error("metadata key #{index} is empty")]
    EmptyKey { index: u64 },
    #[error("duplicate metadata key {key:?}")]
    DuplicateKey { key: String },
    #[error("metadata {key:?} has unknown value type {id}")]
    UnknownValueType { key: String, id: u32 },
    #[error("metadata {key:?} is an array of arrays")]
    NestedArray { key: String },
    #[error("metadata {key:?} has bool byte {byte} (must be 0 or 1)")]
    InvalidBool { key: String, byte: u8 },
    #[error("general.alignment must be a u32, found {found}")]
    AlignmentWrongType { found: &'static str },
    #[error("general.alignment {alignment} is not a power of two")]
    BadAlignment { alignment: u64 },
    #[error("tensor #{index} has an empty name")]
    EmptyTensorName { index: u64 },
    #[error("tensor #{index} has a {len}-byte name (limit {MAX_TENSOR_NAME_LEN})")]
    TensorNameTooLong { index: u64, len: u64 },
    #[error("duplicate tensor {name:?}")]
    DuplicateTensor { name: String },
    #[error("tensor {tensor} has {n_dims} dimensions (must be 1 to 4)")]
    BadDimCount { tensor: String, n_dims: u32 },
    #[error("tensor {tensor} has dimension {axis} = {dim} (must be 1 to i64::MAX)")]
    BadDim { tensor: String, axis: usize, dim: u64 },
    #[error("tensor {tensor}: element count or byte size overflows")]
    SizeOverflow { tensor: String },
    #[error("tensor {tensor}: ne[0] = {ne0} is not a multiple of the {ty} block size {block_size}")]
    NotBlockMultiple { tensor: String, ty: &'static str, ne0: u64, block_size: usize },
    #[error("tensor {tensor} has unknown ggml type id {id}")]
    UnknownType { tensor: String, id: u32 },
    #[error("tensor {tensor} uses {name}, which aigc does not implement (ggml type {id})")]
    UnsupportedType { name: String, tensor: String, id: u32 },
    #[error("tensor {tensor}: offset {offset} is not a multiple of the alignment {alignment}")]
    UnalignedOffset { tensor: String, offset: u64, alignment: u64 },
    #[error("tensor {tensor}: offset + size overflows")]
    OffsetOverflow { tensor: String },
    #[error("tensor {tensor} ends at byte {end}, past the end of the file ({file_len})")]
    TensorPastEof { tensor: String, end: u64, file_len: u64 },
    #[error("tensors {first} and {second} overlap")]
    TensorOverlap { first: String, second: String },
    #[error("metadata {key:?} is not {expected}")]
    WrongType { key: String, expected: &'static str },
}

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value { U8(u8), I8(i8), U16(u16), I16(i16), U32(u32), I32(i32), F32(f32), Bool(bool), Str(String), U64(u64), I64(i64), F64(f64), Array(Array) }

/// A typed metadata array (GGUF arrays are homogeneous and never nested).
#[derive(Debug, Clone, PartialEq)]
pub enum Array { U8(Vec<u8>), I8(Vec<i8>), U16(Vec<u16>), I16(Vec<i16>), U32(Vec<u32>), I32(Vec<i32>), F32(Vec<f32>), Bool(Vec<bool>), Str(Vec<String>), U64(Vec<u64>), I64(Vec<i64>), F64(Vec<f64>) }

impl Value {
    /// The value of any integer type, widened.
    pub fn as_int(&self) -> Option<i128> {
        Some(match *self {
            Value::U8(x) => x.into(), Value::I8(x) => x.into(), Value::U16(x) => x.into(), Value::I16(x) => x.into(),
            Value::U32(x) => x.into(), Value::I32(x) => x.into(), Value::U64(x) => x.into(), Value::I64(x) => x.into(),
            _ => return None,
        })
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Value::U8(_) => "u8", Value::I8(_) => "i8", Value::U16(_) => "u16", Value::I16(_) => "i16",
            Value::U32(_) => "u32", Value::I32(_) => "i32", Value::F32(_) => "f32", Value::Bool(_) => "bool",
            Value::Str(_) => "string", Value::U64(_) => "u64", Value::I64(_) => "i64", Value::F64(_) => "f64",
            Value::Array(_) => "array",
        }
    }
}

/// One tensor's header entry, validated against the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` (ne[0]) varies fastest, so `[n_in, n_out]` is row-major `[n_out][n_in]`.
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Absolute file offset of the first byte.
    pub offset: u64,
    pub n_bytes: u64,
    pub n_elements: u64,
}

impl TensorInfo {
    /// Rows of `dims[0]` elements.
    pub fn n_rows(&self) -> u64 {
        self.dims.iter().skip(1).product()
    }
}

/// A parsed GGUF header.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufFile {
    pub version: u32,
    /// In file order; keys are unique.
    pub metadata: Vec<(String, Value)>,
    /// In file order; names are unique.
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    /// Absolute file offset of the data section.
    pub data_offset: u64,
    pub file_len: u64,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    file_len: u64,
    /// Lower bound on where the header ends, from counts read so far (a better retry hint).
    min_end: u64,
}

impl<'a> Reader<'a> {
    fn at(&self) -> u64 { self.pos as u64 }
    fn remaining(&self) -> u64 { self.file_len.saturating_sub(self.at()) }
    fn take(&mut self, n: u64, what: &'static str) -> Result<&'a [u8], GgufError> {
        let at = self.at();
        let end = at.saturating_add(n);
        if end > self.file_len {
            return Err(GgufError::Truncated { what, at, end, file_len: self.file_len });
        }
        let have = self.buf.len() as u64;
        if end > have {
            return Err(GgufError::NeedMoreHeader { have, at_least: end.max(self.min_end.min(self.file_len)) });
        }
        let bytes = self.buf.get(self.pos..end as usize).ok_or(GgufError::Truncated { what, at, end, file_len: have })?;
        self.pos = end as usize;
        Ok(bytes)
    }
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], GgufError> {
        let at = self.at();
        let b = self.take(N as u64, what)?;
        b.try_into().map_err(|_| GgufError::Truncated { what, at, end: at.saturating_add(N as u64), file_len: self.file_len })
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, GgufError> { self.array(what).map(u32::from_le_bytes) }
    fn u64(&mut self, what: &'static str) -> Result<u64, GgufError> { self.array(what).map(u64::from_le_bytes) }
    /// A length-prefixed UTF-8 string of at most `max` bytes.
    fn string(&mut self, what: &'static str, max: u64) -> Result<String, GgufError> {
        let len = self.u64(what)?;
        if len > max {
            return Err(GgufError::StringTooLong { what, len, max });
        }
        let at = self.at();
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| GgufError::InvalidUtf8 { what, at })
    }
    /// `count` fixed-size elements; `count` was bounded by the caller, and the bytes exist.
    fn vec<const N: usize, T>(&mut self, count: u64, f: fn([u8; N]) -> T) -> Result<Vec<T>, GgufError> {
        let n = count.checked_mul(N as u64).ok_or(GgufError::CountTooLarge { what: "array length", count, limit: MAX_ARRAY_LEN })?;
        Ok(self.take(n, "array")?.as_chunks::<N>().0.iter().map(|b| f(*b)).collect())
    }
}

fn bool_byte(byte: u8, key: &str) -> Result<bool, GgufError> {
    if byte <= 1 { Ok(byte == 1) } else { Err(GgufError::InvalidBool { key: key.to_string(), byte }) }
}

fn read_value(r: &mut Reader, key: &str, ty: u32) -> Result<Value, GgufError> {
    Ok(match ty {
        0 => Value::U8(u8::from_le_bytes(r.array("value")?)),
        1 => Value::I8(i8::from_le_bytes(r.array("value")?)),
        2 => Value::U16(u16::from_le_bytes(r.array("value")?)),
        3 => Value::I16(i16::from_le_bytes(r.array("value")?)),
        4 => Value::U32(u32::from_le_bytes(r.array("value")?)),
        5 => Value::I32(i32::from_le_bytes(r.array("value")?)),
        6 => Value::F32(f32::from_le_bytes(r.array("value")?)),
        7 => Value::Bool(bool_byte(u8::from_le_bytes(r.array("value")?), key)?),
        8 => Value::Str(r.string("string value", MAX_STRING_LEN)?),
        9 => Value::Array(read_array(r, key)?),
        10 => Value::U64(u64::from_le_bytes(r.array("value")?)),
        11 => Value::I64(i64::from_le_bytes(r.array("value")?)),
        12 => Value::F64(f64::from_le_bytes(r.array("value")?)),
        id => return Err(GgufError::UnknownValueType { key: key.to_string(), id }),
    })
}

fn read_array(r: &mut Reader, key: &str) -> Result<Array, GgufError> {
    let ty = r.u32("array type")?;
    let min_size: u64 = match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 | 10 | 11 | 12 => 8, // a string is at least its u64 length
        9 => return Err(GgufError::NestedArray { key: key.to_string() }),
        id => return Err(GgufError::UnknownValueType { key: key.to_string(), id }),
    };
    let count = r.u64("array length")?;
    if count > MAX_ARRAY_LEN {
        return Err(GgufError::CountTooLarge { what: "array length", count, limit: MAX_ARRAY_LEN });
    }
    let limit = r.remaining() / min_size;
    if count > limit {
        return Err(GgufError::CountTooLarge { what: "array length", count, limit });
    }
    r.min_end = r.min_end.max(r.at() + count * min_size); // count * min_size <= remaining
    Ok(match ty {
        0 => Array::U8(r.vec(count, u8::from_le_bytes)?),
        1 => Array::I8(r.vec(count, i8::from_le_bytes)?),
        2 => Array::U16(r.vec(count, u16::from_le_bytes)?),
        3 => Array::I16(r.vec(count, i16::from_le_bytes)?),
        4 => Array::U32(r.vec(count, u32::from_le_bytes)?),
        5 => Array::I32(r.vec(count, i32::from_le_bytes)?),
        6 => Array::F32(r.vec(count, f32::from_le_bytes)?),
        7 => Array::Bool(r.vec(count, u8::from_le_bytes)?.into_iter().map(|b| bool_byte(b, key)).collect::<Result<_, _>>()?),
        10 => Array::U64(r.vec(count, u64::from_le_bytes)?),
        11 => Array::I64(r.vec(count, i64::from_le_bytes)?),
        12 => Array::F64(r.vec(count, f64::from_le_bytes)?),
        _ => {
            let mut v = Vec::new(); // grows only as strings are actually read
            for _ in 0..count {
                v.push(r.string("array string", MAX_STRING_LEN)?);
            }
            Array::Str(v)
        }
    })
}

fn read_tensor_info(r: &mut Reader, index: u64) -> Result<TensorInfo, GgufError> {
    let len = r.u64("tensor name")?;
    if len == 0 {
        return Err(GgufError::EmptyTensorName { index });
    }
    if len > MAX_TENSOR_NAME_LEN {
        return Err(GgufError::TensorNameTooLong { index, len });
    }
    let at = r.at();
    let name = String::from_utf8(r.take(len, "tensor name")?.to_vec())
        .map_err(|_| GgufError::InvalidUtf8 { what: "tensor name", at })?;
    let n_dims = r.u32("tensor n_dims")?;
    if !(1..=4).contains(&n_dims) {
        return Err(GgufError::BadDimCount { tensor: name, n_dims });
    }
    let mut dims = Vec::with_capacity(4);
    for axis in 0..n_dims as usize {
        let dim = r.u64("tensor dimension")?;
        if dim == 0 || dim > i64::MAX as u64 {
            return Err(GgufError::BadDim { tensor: name, axis, dim });
        }
        dims.push(dim);
    }
    let id = r.u32("tensor type")?;
    let offset = r.u64("tensor offset")?;
    let ty = match (GgmlType::from_id(id), ggml_type_name(id)) {
        (Some(ty), _) => ty,
        (None, "unknown") => return Err(GgufError::UnknownType { tensor: name, id }),
        (None, known) => return Err(GgufError::UnsupportedType { name: known.to_string(), tensor: name, id }),
    };
    let overflow = |name: &String| GgufError::SizeOverflow { tensor: name.clone() };
    let n_elements = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).filter(|&n| n <= i64::MAX as u64).ok_or_else(|| overflow(&name))?;
    let ne0 = dims.first().copied().unwrap_or(1);
    if !ne0.is_multiple_of(ty.block_size() as u64) {
        return Err(GgufError::NotBlockMultiple { tensor: name, ty: ty.name(), ne0, block_size: ty.block_size() });
    }
    let row = ty.row_bytes(ne0).ok_or_else(|| overflow(&name))?;
    let n_bytes = dims.iter().skip(1).try_fold(row, |a, &d| a.checked_mul(d)).ok_or_else(|| overflow(&name))?;
    Ok(TensorInfo { name, dims, ty, offset, n_bytes, n_elements })
}

impl GgufFile {
    /// Parse from a prefix of the file. `file_len` is the whole file's length.
    /// If the header runs past `prefix` but fits in `file_len`, returns
    /// [`GgufError::NeedMoreHeader`] so the caller can read a longer prefix and retry.
    pub fn parse(prefix: &[u8], file_len: u64) -> Result<GgufFile, GgufError> {
        if prefix.len() as u64 > file_len {
            return Err(GgufError::PrefixLongerThanFile { prefix: prefix.len() as u64, file_len });
        }
        let mut r = Reader { buf: prefix, pos: 0, file_len, min_end: 0 };
        let found: [u8; 4] = r.array("magic")?;
        if found != GGUF_MAGIC {
            return Err(GgufError::BadMagic { found });
        }
        let version = r.u32("version")?;
        if version != 0 && version & 0xFFFF == 0 {
            return Err(GgufError::ByteSwapped { raw: version });
        }
        if !(2..=3).contains(&version) {
            return Err(GgufError::UnsupportedVersion { version });
        }
        let n_tensors = r.u64("tensor count")?;
        let n_kv = r.u64("metadata count")?;
        for (what, count, cap, min) in [("tensor count", n_tensors, MAX_TENSORS, MIN_TENSOR_INFO_BYTES), ("metadata count", n_kv, MAX_KV, MIN_KV_BYTES)] {
            let limit = cap.min(r.remaining() / min);
            if count > limit {
                return Err(GgufError::CountTooLarge { what, count, limit });
            }
        }
        // Both counts are <= 2^16 here, so this cannot overflow.
        let min_rest = n_tensors * MIN_TENSOR_INFO_BYTES + n_kv * MIN_KV_BYTES;
        if min_rest > r.remaining() {
            return Err(GgufError::CountTooLarge { what: "tensor + metadata count", count: n_tensors + n_kv, limit: r.remaining() / MIN_KV_BYTES });
        }
        r.min_end = r.at() + min_rest;

        let mut metadata = Vec::new();
        let mut keys = HashSet::new();
        for index in 0..n_kv {
            let key = r.string("metadata key", MAX_STRING_LEN)?;
            if key.is_empty() {
                return Err(GgufError::EmptyKey { index });
            }
            if !keys.insert(key.clone()) {
                return Err(GgufError::DuplicateKey { key });
            }
            let ty = r.u32("value type")?;
            let value = read_value(&mut r, &key, ty)?;
            metadata.push((key, value));
        }
        let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some((_, Value::U32(a))) => u64::from(*a),
            Some((_, v)) => return Err(GgufError::AlignmentWrongType { found: v.type_name() }),
        };
        if !alignment.is_power_of_two() {
            return Err(GgufError::BadAlignment { alignment });
        }

        let mut tensors: Vec<TensorInfo> = Vec::new();
        let mut names = HashSet::new();
        for index in 0..n_tensors {
            let t = read_tensor_info(&mut r, index)?;
            if !names.insert(t.name.clone()) {
                return Err(GgufError::DuplicateTensor { name: t.name });
            }
            tensors.push(t);
        }

        let header_end = r.at();
        let padded = header_end.checked_next_multiple_of(alignment);
        let mut data_offset = padded.unwrap_or(u64::MAX);
        if padded.is_none_or(|d| d > file_len) {
            if !tensors.is_empty() {
                return Err(GgufError::Truncated { what: "header padding", at: header_end, end: data_offset, file_len });
            }
            data_offset = file_len;
        }
        let mut spans = Vec::new();
        for (i, t) in tensors.iter_mut().enumerate() {
            if !t.offset.is_multiple_of(alignment) {
                return Err(GgufError::UnalignedOffset { tensor: t.name.clone(), offset: t.offset, alignment });
            }
            let start = data_offset.checked_add(t.offset);
            let end = start.and_then(|s| s.checked_add(t.n_bytes));
            let (Some(start), Some(end)) = (start, end) else {
                return Err(GgufError::OffsetOverflow { tensor: t.name.clone() });
            };
            if end > file_len {
                return Err(GgufError::TensorPastEof { tensor: t.name.clone(), end, file_len });
            }
            t.offset = start;
            spans.push((start, end, i));
        }
        spans.sort_unstable();
        for w in spans.windows(2) {
            if let [(_, a_end, a), (b_start, _, b)] = w {
                if b_start < a_end {
                    let name = |i: &usize| tensors.get(*i).map(|t| t.name.clone()).unwrap_or_default();
                    return Err(GgufError::TensorOverlap { first: name(a), second: name(b) });
                }
            }
        }
        Ok(GgufFile { version, metadata, tensors, alignment, data_offset, file_len })
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn typed<'s, T>(&'s self, key: &str, expected: &'static str, f: impl FnOnce(&'s Value) -> Option<T>) -> Result<Option<T>, GgufError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => f(v).map(Some).ok_or_else(|| GgufError::WrongType { key: key.to_string(), expected }),
        }
    }

    pub fn get_str(&self, key: &str) -> Result<Option<&str>, GgufError> {
        self.typed(key, "a string", |v| if let Value::Str(s) = v { Some(s.as_str()) } else { None })
    }

    /// Any integer type holding a value >= 0.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>, GgufError> {
        self.typed(key, "a non-negative integer", |v| v.as_int().and_then(|x| u64::try_from(x).ok()))
    }

    /// f32, f64 (rounded to f32) or any integer.
    pub fn get_f32(&self, key: &str) -> Result<Option<f32>, GgufError> {
        self.typed(key, "a number", |v| match *v {
            Value::F32(x) => Some(x),
            Value::F64(x) => Some(x as f32),
            _ => v.as_int().map(|x| x as f32),
        })
    }

    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, GgufError> {
        self.typed(key, "a bool", |v| if let Value::Bool(b) = *v { Some(b) } else { None })
    }

    pub fn get_str_array(&self, key: &str) -> Result<Option<&[String]>, GgufError> {
        self.typed(key, "an array of strings", |v| if let Value::Array(Array::Str(a)) = v { Some(a.as_slice()) } else { None })
    }

    pub fn get_f32_array(&self, key: &str) -> Result<Option<&[f32]>, GgufError> {
        self.typed(key, "an array of f32", |v| if let Value::Array(Array::F32(a)) = v { Some(a.as_slice()) } else { None })
    }

    /// An i32/u32/i16/u16/i8/u8 array as i32 (u32 values above i32::MAX are refused).
    pub fn get_i32_array(&self, key: &str) -> Result<Option<Vec<i32>>, GgufError> {
        self.typed(key, "an array of i32", |v| match v {
            Value::Array(Array::I32(a)) => Some(a.clone()),
            Value::Array(Array::U32(a)) => a.iter().map(|&x| i32::try_from(x).ok()).collect(),
            Value::Array(Array::I16(a)) => Some(a.iter().map(|&x| x.into()).collect()),
            Value::Array(Array::U16(a)) => Some(a.iter().map(|&x| x.into()).collect()),
            Value::Array(Array::I8(a)) => Some(a.iter().map(|&x| x.into()).collect()),
            Value::Array(Array::U8(a)) => Some(a.iter().map(|&x| x.into()).collect()),
            _ => None,
        })
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Bytes before the data section (header + padding) = `data_offset`.
    pub fn header_bytes(&self) -> u64 {
        self.data_offset
    }
}
