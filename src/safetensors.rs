//! safetensors files (diffusion checkpoints) read the way GGUF is: the header from a prefix of
//! the file, then each tensor by its byte range, so a multi-GB checkpoint never sits in memory.
//!
//! Layout (huggingface/safetensors): `u64 LE n`, then `n` bytes of JSON mapping each name to
//! `{dtype, shape, data_offsets: [begin, end]}` relative to the end of the header, then the data.
//! The JSON is parsed and validated by the `safetensors` crate's `Metadata` (offsets contiguous,
//! sizes matching dtype × shape); we add the checks that need the file length, which the crate
//! only does when handed the whole file.

use ::safetensors::tensor::{Dtype, Metadata};

use crate::error::{Error, Result};
use crate::source::ByteSource;

/// No real header is near this (the crate's own cap is 100 MB).
const MAX_HEADER: u64 = 100 << 20;

/// The element types a checkpoint's float tensors may use; everything else is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StType {
    F32,
    F16,
    BF16,
}

impl StType {
    fn size(self) -> usize {
        match self {
            StType::F32 => 4,
            StType::F16 | StType::BF16 => 2,
        }
    }
}

/// One tensor's place in the file.
#[derive(Clone, Debug)]
pub struct StTensor {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    /// Absolute byte offset of the first element.
    pub offset: u64,
    pub n_bytes: u64,
}

/// An open safetensors file: its tensor table and the bytes behind it.
pub struct SafetensorsFile<S: ByteSource> {
    src: S,
    tensors: std::collections::HashMap<String, StTensor>,
    /// Where the file came from, for error messages.
    pub label: String,
}

fn bad(label: &str, what: impl std::fmt::Display) -> Error {
    Error::WeightsFormat(format!("{label}: {what}"))
}

impl<S: ByteSource> SafetensorsFile<S> {
    /// Read and validate the header (two reads: the length word, then the JSON).
    pub async fn open(src: S, label: &str) -> Result<SafetensorsFile<S>> {
        let file_len = src.len();
        if file_len < 8 {
            return Err(bad(label, format!("{file_len} bytes is too short for a safetensors header")));
        }
        let word = src.read(0, 8).await?;
        let n = u64::from_le_bytes(word[..8].try_into().map_err(|_| bad(label, "short read"))?);
        if n > MAX_HEADER {
            return Err(bad(label, format!("header claims {n} bytes (more than {MAX_HEADER})")));
        }
        if n.saturating_add(8) > file_len {
            return Err(bad(label, format!("header of {n} bytes runs past the end of the {file_len}-byte file")));
        }
        let json = src.read(8, n as usize).await?;
        let text = std::str::from_utf8(&json).map_err(|e| bad(label, format!("header is not UTF-8: {e}")))?;
        let meta: Metadata =
            serde_json::from_str(text).map_err(|e| bad(label, format!("header JSON: {e}")))?;
        let data_start = 8 + n;
        let data_len = meta.data_len() as u64;
        if data_start + data_len != file_len {
            return Err(bad(
                label,
                format!("tensors need {data_len} data bytes after the header but the file has {}", file_len - data_start),
            ));
        }
        let mut tensors = std::collections::HashMap::new();
        for (name, info) in meta.tensors() {
            let (b, e) = info.data_offsets;
            tensors.insert(
                name,
                StTensor {
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                    offset: data_start + b as u64,
                    n_bytes: (e - b) as u64,
                },
            );
        }
        Ok(SafetensorsFile { src, tensors, label: label.to_string() })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(|k| k.as_str())
    }

    pub fn info(&self, name: &str) -> Result<&StTensor> {
        self.tensors.get(name).ok_or_else(|| bad(&self.label, format!("missing tensor `{name}`")))
    }

    /// The tensor as f32 values (f16 / bf16 widened exactly), checked against `shape`. A
    /// `shape` entry of 0 accepts any size there (for sizes the caller reads from the file).
    pub async fn f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let t = self.info(name)?;
        let ty = match t.dtype {
            Dtype::F32 => StType::F32,
            Dtype::F16 => StType::F16,
            Dtype::BF16 => StType::BF16,
            other => {
                return Err(Error::UnsupportedModel(format!(
                    "{}: tensor `{name}` has element type {other:?}; only F32, F16 and BF16 are supported",
                    self.label
                )))
            }
        };
        let fits = t.shape.len() == shape.len() && t.shape.iter().zip(shape).all(|(&a, &b)| b == 0 || a == b);
        if !fits {
            return Err(Error::ModelConfig(format!(
                "{}: tensor `{name}` has shape {:?}, expected {shape:?}",
                self.label, t.shape
            )));
        }
        let count: usize = t.shape.iter().product();
        if count * ty.size() != t.n_bytes as usize {
            return Err(bad(&self.label, format!("tensor `{name}` size does not match its shape")));
        }
        let bytes = self.src.read(t.offset, t.n_bytes as usize).await?;
        Ok(match ty {
            StType::F32 => bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            StType::F16 => bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            StType::BF16 => bytes
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        })
    }

    /// The shape of a tensor, for sizes the caller learns from the checkpoint.
    pub fn shape(&self, name: &str) -> Result<&[usize]> {
        Ok(&self.info(name)?.shape)
    }
}
