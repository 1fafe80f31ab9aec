//! The one error type the engine returns, and the stable names it carries across the JS boundary.
//!
//! Each subsystem owns a detailed error enum (`GgufError`, `TokenizerError`, `ChatError`, …); this
//! enum wraps them. [`Error::name`] is the class name the page sees (`ModelFormatError`, …): keep those
//! names stable, other tools match on them.

use thiserror::Error as ThisError;

pub use crate::chat::ChatError;
pub use crate::gguf::GgufError;
pub use crate::tokenizer::TokenizerError;

/// Every failure a caller of the engine can see.
#[derive(Debug, ThisError)]
pub enum Error {
    /// The file is not a well-formed GGUF (truncated, bad counts, bad offsets, …).
    #[error("malformed model file: {0}")]
    Format(#[from] GgufError),
    /// A safetensors checkpoint (or its folder) is malformed: bad header, missing tensor, bad config.
    #[error("malformed checkpoint: {0}")]
    WeightsFormat(String),
    /// The file is well-formed but uses something the engine does not implement.
    #[error("unsupported model: {0}")]
    UnsupportedModel(String),
    /// Hyper-parameters or tensors disagree with each other.
    #[error("inconsistent model: {0}")]
    ModelConfig(String),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Chat(#[from] ChatError),
    /// The prompt (plus what must be generated) does not fit in the context window.
    #[error("prompt of {prompt} tokens does not fit the context of {ctx} tokens")]
    ContextOverflow { prompt: usize, ctx: usize },
    /// A sampling or generation option is out of range.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// No usable GPU adapter (no WebGPU in the browser, no Vulkan driver natively).
    #[error("no WebGPU adapter: {0}")]
    WebGpuUnavailable(String),
    /// The model does not fit the device's limits or memory.
    #[error("out of GPU memory or limits: {0}")]
    OutOfMemory(String),
    /// The GPU device was lost (driver reset, out of memory, or unloaded).
    #[error("GPU device lost: {0}")]
    DeviceLost(String),
    /// Any other GPU-side failure (readback, kernel launch).
    #[error("GPU error: {0}")]
    Gpu(String),
    /// Reading the model bytes failed (file, network, storage).
    #[error("I/O error: {0}")]
    Io(String),
    /// Browser storage quota exceeded while caching a model.
    #[error("storage quota exceeded: {0}")]
    StorageQuota(String),
    /// The caller cancelled (abort signal).
    #[error("cancelled")]
    Cancelled,
}

impl Error {
    /// Stable class name for this error, as the JS API names it.
    pub fn name(&self) -> &'static str {
        match self {
            Error::Format(GgufError::UnsupportedType { .. }) => "UnsupportedModelError",
            Error::Format(_) => "ModelFormatError",
            Error::WeightsFormat(_) => "ModelFormatError",
            Error::UnsupportedModel(_) => "UnsupportedModelError",
            Error::ModelConfig(_) => "ModelFormatError",
            Error::Tokenizer(_) => "TokenizerError",
            Error::Chat(_) => "ChatTemplateError",
            Error::ContextOverflow { .. } => "ContextOverflowError",
            Error::InvalidOption(_) => "InvalidOptionError",
            Error::WebGpuUnavailable(_) => "WebGpuUnavailableError",
            Error::OutOfMemory(_) => "OutOfMemoryError",
            Error::DeviceLost(_) => "DeviceLostError",
            Error::Gpu(_) => "GpuError",
            Error::Io(_) => "IoError",
            Error::StorageQuota(_) => "StorageQuotaError",
            Error::Cancelled => "AbortError",
        }
    }
}

impl From<crate::sampling::SamplingError> for Error {
    fn from(e: crate::sampling::SamplingError) -> Self {
        Error::InvalidOption(e.to_string())
    }
}

impl From<crate::models::diffusion::scheduler::SchedulerError> for Error {
    fn from(e: crate::models::diffusion::scheduler::SchedulerError) -> Self {
        use crate::models::diffusion::scheduler::SchedulerError as S;
        match e {
            S::InvalidConfig(_) => Error::WeightsFormat(e.to_string()),
            _ => Error::InvalidOption(e.to_string()),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
