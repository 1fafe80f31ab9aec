//! Tokenizers read from GGUF metadata, matching llama.cpp's `llama-vocab.cpp` id for id: byte-level
//! BPE (`gpt2`, with the `tokenizer.ggml.pre` pre-tokenizers) and SentencePiece (`llama`), special
//! tokens, end-of-generation detection, detokenization and streaming UTF-8 decoding.
//!
//! The core is independent of GGUF: fill a [`TokenizerData`] and call [`Tokenizer::new`];
//! [`Tokenizer::from_gguf`] does that from the model file. Owns: the public types, the error enum,
//! `encode` (special-token partition + dispatch) and the GGUF adapter. Construction and llama.cpp's
//! load-time fix-ups live in `vocab.rs`, the algorithms in `pretok.rs`, `bpe.rs`, `spm.rs`,
//! detokenization in `decode.rs`, streaming in `stream.rs`.

mod bpe;
mod clip;
mod decode;
mod pretok;
mod spm;
mod stream;
mod unicode;
mod unicode_table;
mod vocab;

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;

pub use clip::{ClipTokenizer, CLIP_MAX_LENGTH};
pub use stream::StreamDecoder;

use vocab::{ATTR_CONTROL, ATTR_UNKNOWN};

/// Everything the tokenizer needs, as read from `tokenizer.ggml.*` metadata.
#[derive(Clone, Debug, Default)]
pub struct TokenizerData {
    /// `tokenizer.ggml.model`: `"gpt2"` (byte-level BPE) or `"llama"` (SentencePiece).
    pub model: String,
    /// `tokenizer.ggml.pre`: the BPE pre-tokenizer family (`smollm`, `llama-bpe`, `qwen2`, …).
    pub pre: Option<String>,
    pub tokens: Vec<String>,
    pub scores: Option<Vec<f32>>,
    pub token_types: Option<Vec<i32>>,
    /// `"left right"` strings; the rank of a merge is its index.
    pub merges: Option<Vec<String>>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub unk: Option<u32>,
    pub pad: Option<u32>,
    pub add_bos: Option<bool>,
    pub add_eos: Option<bool>,
    pub add_space_prefix: Option<bool>,
}

/// Why tokenizer metadata was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("tokenizer metadata key {0} is missing")]
    MissingKey(&'static str),
    #[error("reading tokenizer metadata: {0}")]
    Metadata(String),
    #[error("unsupported tokenizer model {0:?} (supported: \"gpt2\", \"llama\")")]
    UnknownModel(String),
    #[error("unknown or unsupported BPE pre-tokenizer {0:?}")]
    UnknownPre(String),
    #[error("the vocabulary is empty")]
    EmptyVocab,
    #[error("the vocabulary has {0} tokens, more than token ids can address")]
    VocabTooLarge(usize),
    #[error("{what} has {len} entries but there are {n_tokens} tokens")]
    LengthMismatch { what: &'static str, len: usize, n_tokens: usize },
    #[error("token {id} ({text:?}) appears twice in the vocabulary")]
    DuplicateToken { id: u32, text: String },
    #[error("merge {index} ({merge:?}) is not of the form \"left right\"")]
    BadMerge { index: usize, merge: String },
    #[error("score of token {id} is NaN")]
    InvalidScore { id: u32 },
    #[error("token {id} is typed as a byte but its text {text:?} is not <0xNN>")]
    BadByteToken { id: u32, text: String },
    #[error("special token {which} = {id} is outside the vocabulary of {n_vocab} tokens")]
    SpecialIdOutOfRange { which: &'static str, id: u64, n_vocab: usize },
    #[error("{file}: {msg}")]
    BadJson { file: &'static str, msg: String },
    #[error("merge {index} ({merge:?}) needs {token:?}, which is not in the vocabulary")]
    MergeOutOfVocab { index: usize, merge: String, token: String },
    #[error("special token {which} {text:?} is not in the vocabulary")]
    MissingSpecialToken { which: &'static str, text: String },
    #[error("model_max_length {0} is not a usable sequence length (2 to 65536)")]
    BadMaxLength(String),
}

#[derive(Clone)]
pub(crate) enum Kind {
    Bpe { regex: pretok::PreRegex, ignore_merges: bool, merges: bpe::Merges },
    Spm,
}

/// A loaded tokenizer. Share it by reference; all methods take `&self`.
#[derive(Clone)]
pub struct Tokenizer {
    kind: Kind,
    model: String,
    pre: Option<String>,
    tokens: Vec<String>,
    scores: Vec<f32>,
    /// llama.cpp token attributes (after its load-time fix-ups).
    attrs: Vec<u32>,
    token_to_id: HashMap<String, u32>,
    /// byte value of every BYTE-typed token
    byte_of: HashMap<u32, u8>,
    /// SPM byte fallback: the token of each byte
    byte_tokens: [Option<u32>; 256],
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    unk: Option<u32>,
    pad: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    clean_spaces: bool,
    eog: BTreeSet<u32>,
    /// control / user-defined / unknown tokens, longest text first
    special: Vec<u32>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("model", &self.model)
            .field("pre", &self.pre)
            .field("vocab_size", &self.tokens.len())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("eot", &self.eot)
            .field("eog", &self.eog)
            .finish_non_exhaustive()
    }
}

enum Fragment {
    Text(Range<usize>),
    Token(u32),
}

impl Tokenizer {
    /// Read `tokenizer.ggml.*` from a GGUF file and build the tokenizer.
    pub fn from_gguf(gguf: &crate::gguf::GgufFile) -> Result<Self, TokenizerError> {
        let meta = |e: crate::gguf::GgufError| TokenizerError::Metadata(e.to_string());
        let model = gguf
            .get_str("tokenizer.ggml.model")
            .map_err(meta)?
            .ok_or(TokenizerError::MissingKey("tokenizer.ggml.model"))?
            .to_string();
        let tokens = gguf
            .get_str_array("tokenizer.ggml.tokens")
            .map_err(meta)?
            .ok_or(TokenizerError::MissingKey("tokenizer.ggml.tokens"))?
            .to_vec();
        let n_vocab = tokens.len();
        let id = |key: &'static str| -> Result<Option<u32>, TokenizerError> {
            match gguf.get_u64(key).map_err(meta)? {
                None => Ok(None),
                Some(v) => u32::try_from(v).map(Some).map_err(|_| TokenizerError::SpecialIdOutOfRange {
                    which: key,
                    id: v,
                    n_vocab,
                }),
            }
        };
        // llama.cpp also accepts integer scores
        let scores = match gguf.get_f32_array("tokenizer.ggml.scores") {
            Ok(s) => s.map(<[f32]>::to_vec),
            Err(e) => match gguf.get_i32_array("tokenizer.ggml.scores") {
                Ok(Some(s)) => Some(s.into_iter().map(|x| x as f32).collect()),
                _ => return Err(meta(e)),
            },
        };
        let data = TokenizerData {
            model,
            pre: gguf.get_str("tokenizer.ggml.pre").map_err(meta)?.map(str::to_string),
            tokens,
            scores,
            token_types: gguf.get_i32_array("tokenizer.ggml.token_type").map_err(meta)?,
            merges: gguf.get_str_array("tokenizer.ggml.merges").map_err(meta)?.map(<[String]>::to_vec),
            bos: id("tokenizer.ggml.bos_token_id")?,
            eos: id("tokenizer.ggml.eos_token_id")?,
            eot: id("tokenizer.ggml.eot_token_id")?,
            unk: id("tokenizer.ggml.unknown_token_id")?,
            pad: id("tokenizer.ggml.padding_token_id")?,
            add_bos: gguf.get_bool("tokenizer.ggml.add_bos_token").map_err(meta)?,
            add_eos: gguf.get_bool("tokenizer.ggml.add_eos_token").map_err(meta)?,
            add_space_prefix: gguf.get_bool("tokenizer.ggml.add_space_prefix").map_err(meta)?,
        };
        Self::new(data)
    }

    /// Text → ids, as llama.cpp's `llama_tokenize(text, add_special, parse_special)`.
    ///
    /// `add_special` adds BOS (if the model's `add_bos`) and EOS (if `add_eos`). `parse_special`
    /// turns the text of control tokens (e.g. `<|im_start|>`) into their ids; user-defined tokens
    /// are split out either way. Never panics.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::new();
        let fragments = self.partition(text, parse_special);
        if add_special && self.add_bos {
            out.extend(self.bos);
        }
        match &self.kind {
            Kind::Spm => {
                let mut prev_special = true;
                let v = spm::SpmVocab {
                    token_to_id: &self.token_to_id,
                    scores: &self.scores,
                    byte_tokens: &self.byte_tokens,
                    unk: self.unk,
                };
                for f in &fragments {
                    match f {
                        Fragment::Token(id) => {
                            out.push(*id);
                            prev_special = true;
                        }
                        Fragment::Text(r) => {
                            let raw = text.get(r.clone()).unwrap_or("");
                            let mut s = String::with_capacity(raw.len() * 3 + 3);
                            if self.add_space_prefix && prev_special {
                                s.push(' ');
                            }
                            s.push_str(raw);
                            let s = s.replace(' ', "\u{2581}");
                            spm::tokenize(&s, &v, &mut out);
                            prev_special = false;
                        }
                    }
                }
            }
            Kind::Bpe { regex, ignore_merges, merges } => {
                for f in &fragments {
                    match f {
                        Fragment::Token(id) => out.push(*id),
                        Fragment::Text(r) => {
                            let raw = text.get(r.clone()).unwrap_or("");
                            for w in pretok::split(*regex, raw) {
                                let word = unicode::byte_encode(raw.get(w).unwrap_or(""));
                                bpe::merge_word(&word, merges, &self.token_to_id, *ignore_merges, &mut out);
                            }
                        }
                    }
                }
            }
        }
        if add_special && self.add_eos {
            out.extend(self.eos);
        }
        out
    }

    /// llama.cpp `tokenizer_st_partition`: cut the text at every occurrence of a special token's
    /// text, longest tokens first (control and unknown tokens only when `parse_special`).
    fn partition(&self, text: &str, parse_special: bool) -> Vec<Fragment> {
        let mut frags = Vec::new();
        if text.is_empty() {
            return frags;
        }
        frags.push(Fragment::Text(0..text.len()));
        for &id in &self.special {
            let attr = self.attr(id);
            if !parse_special && attr & (ATTR_CONTROL | ATTR_UNKNOWN) != 0 {
                continue;
            }
            let Some(tok) = self.tokens.get(id as usize).filter(|t| !t.is_empty()) else { continue };
            if !frags.iter().any(
                |f| matches!(f, Fragment::Text(r) if text.get(r.clone()).is_some_and(|s| s.contains(tok.as_str()))),
            ) {
                continue;
            }
            let mut next = Vec::with_capacity(frags.len() + 2);
            for f in frags {
                let Fragment::Text(r) = f else {
                    next.push(f);
                    continue;
                };
                let mut start = r.start;
                while let Some(pos) = text.get(start..r.end).and_then(|s| s.find(tok.as_str())) {
                    let m = start + pos;
                    if m > start {
                        next.push(Fragment::Text(start..m));
                    }
                    next.push(Fragment::Token(id));
                    start = m + tok.len();
                }
                if start < r.end {
                    next.push(Fragment::Text(start..r.end));
                }
            }
            frags = next;
        }
        frags
    }

    pub(crate) fn attr(&self, id: u32) -> u32 {
        self.attrs.get(id as usize).copied().unwrap_or(0)
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }
    /// `tokenizer.ggml.model` (`"gpt2"` or `"llama"`).
    pub fn model(&self) -> &str {
        &self.model
    }
    /// `tokenizer.ggml.pre`, if present.
    pub fn pre(&self) -> Option<&str> {
        self.pre.as_deref()
    }
    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }
    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }
    /// End-of-turn: `tokenizer.ggml.eot_token_id`, else detected by text (`<|im_end|>`, `<|eot_id|>`, …).
    pub fn eot_id(&self) -> Option<u32> {
        self.eot
    }
    pub fn unk_id(&self) -> Option<u32> {
        self.unk
    }
    pub fn pad_id(&self) -> Option<u32> {
        self.pad
    }
    /// Whether `encode(_, add_special = true, _)` prepends BOS / appends EOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }
    /// Does generating `id` end the generation (eos, eot, and llama.cpp's end-of-generation set)?
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.contains(&id)
    }
    /// All end-of-generation ids, ascending.
    pub fn eog_ids(&self) -> Vec<u32> {
        self.eog.iter().copied().collect()
    }
    /// Is `id` a control token (after llama.cpp's fix-ups)?
    pub fn is_control(&self, id: u32) -> bool {
        self.attr(id) & ATTR_CONTROL != 0
    }
    /// The vocabulary text of `id` (GPT-2 byte-encoded for BPE, "▁" for spaces in SPM).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }
    /// The id whose vocabulary text is exactly `text`.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.token_to_id.get(text).copied()
    }
    /// The token's score (`tokenizer.ggml.scores`, 0 when absent).
    pub fn token_score(&self, id: u32) -> Option<f32> {
        self.scores.get(id as usize).copied()
    }
}
