//! Where model bytes come from: an async `read(offset, len)` over a file, a byte slice, or (in
//! the browser, see `web.rs`) a Blob or an HTTP range request. One loading path for native and
//! web: the GGUF header is parsed from a prefix, then each tensor is read by its byte range, so
//! the whole file never has to sit in memory.

use crate::error::{Error, Result};
use crate::gguf::{GgufError, GgufFile};

/// Random-access bytes of a model file.
#[allow(async_fn_in_trait)]
pub trait ByteSource {
    /// Total length in bytes.
    fn len(&self) -> u64;
    /// Exactly `len` bytes starting at `offset` (an error if the source is shorter).
    async fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>>;
}

/// An in-memory file (tests, small fixtures).
pub struct SliceSource(pub Vec<u8>);

impl ByteSource for SliceSource {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    async fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let start = usize::try_from(offset).map_err(|_| Error::Io("offset out of range".into()))?;
        let end = start.checked_add(len).filter(|&e| e <= self.0.len());
        match end {
            Some(end) => Ok(self.0[start..end].to_vec()),
            None => Err(Error::Io(format!("read of {len} bytes at {offset} past the end ({})", self.0.len()))),
        }
    }
}

/// A file on disk (native only).
#[cfg(not(target_arch = "wasm32"))]
pub struct FileSource {
    file: std::fs::File,
    len: u64,
}

#[cfg(not(target_arch = "wasm32"))]
impl FileSource {
    pub fn open(path: &std::path::Path) -> Result<FileSource> {
        let file = std::fs::File::open(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        let len = file.metadata()?.len();
        Ok(FileSource { file, len })
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl ByteSource for FileSource {
    fn len(&self) -> u64 {
        self.len
    }
    async fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; len];
        self.file
            .read_exact_at(&mut buf, offset)
            .map_err(|e| Error::Io(format!("read of {len} bytes at {offset}: {e}")))?;
        Ok(buf)
    }
}

/// A folder of model files (a diffusers checkpoint: `unet/`, `vae/`, `text_encoder/`,
/// `tokenizer/`, `scheduler/`), addressed by relative paths with `/`.
#[allow(async_fn_in_trait)]
pub trait ModelFolder {
    type Source: ByteSource;
    /// The text of `rel`, or `None` when the folder has no such file.
    async fn text(&self, rel: &str) -> Result<Option<String>>;
    /// Random access to the bytes of `rel` (`WeightsFormat` when the folder has no such file).
    async fn open(&self, rel: &str) -> Result<Self::Source>;
}

/// A directory on disk (native only).
#[cfg(not(target_arch = "wasm32"))]
pub struct DirFolder(pub std::path::PathBuf);

#[cfg(not(target_arch = "wasm32"))]
impl ModelFolder for DirFolder {
    type Source = FileSource;
    async fn text(&self, rel: &str) -> Result<Option<String>> {
        let path = self.0.join(rel);
        match std::fs::read_to_string(&path) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Io(format!("{}: {e}", path.display()))),
        }
    }
    async fn open(&self, rel: &str) -> Result<FileSource> {
        let path = self.0.join(rel);
        if !path.is_file() {
            return Err(Error::WeightsFormat(format!("the model folder {} has no {rel}", self.0.display())));
        }
        FileSource::open(&path)
    }
}

/// First prefix read for the header; doubled until the header fits.
const FIRST_PREFIX: u64 = 4 << 20;
/// No real header is near this; a file that claims more is refused before reading it.
const MAX_HEADER: u64 = 512 << 20;

/// Parse the GGUF header from the smallest prefix that holds it.
pub async fn read_gguf_header<S: ByteSource>(src: &S) -> Result<GgufFile> {
    let file_len = src.len();
    let mut want = FIRST_PREFIX.min(file_len);
    loop {
        let prefix = src.read(0, want as usize).await?;
        match GgufFile::parse(&prefix, file_len) {
            Ok(g) => return Ok(g),
            Err(GgufError::NeedMoreHeader { at_least, .. }) if want < file_len => {
                let next = at_least.max(want.saturating_mul(2)).min(file_len);
                if next > MAX_HEADER {
                    return Err(Error::ModelConfig(format!("GGUF header larger than {} MiB", MAX_HEADER >> 20)));
                }
                want = next;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
