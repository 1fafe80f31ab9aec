//! CLIP's byte-level BPE tokenizer, as Stable Diffusion text encoders use it (the `tokenizer/` folder of a
//! diffusers model: `vocab.json`, `merges.txt`, `tokenizer_config.json`), matching transformers'
//! `CLIPTokenizer` id for id. Owns: reading and validating those files, CLIP's text preparation, BPE with
//! the `</w>` end-of-word suffix, and the fixed-length layout the text encoder takes (BOS, text, EOS, padding
//! to `model_max_length`, 77).
//!
//! Text preparation, in transformers' order: the text of the special tokens (bos, eos, unk, pad) is cut out
//! of the raw text first (leftmost, longest first; case-sensitive), so with SD 2.x's pad token `"!"` every
//! `!` becomes its own token, as in transformers. The rest is normalized — every run of Unicode White_Space
//! becomes one space, each character is lower-cased on its own (no final-sigma rule, as the `tokenizers`
//! library) — and split by CLIP's pattern `'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`
//! (spaces are dropped; a normalized `<|endoftext|>` that was not cut out stays one piece, which the GPT-2
//! pattern of the byte-level step then cuts into `<|`, `endoftext`, `|>`). Each piece is mapped to GPT-2's byte-level characters and merged by rank, the
//! last symbol carrying `</w>`. Characters missing from the vocabulary become the unk token.
//!
//! Difference from transformers: no Unicode NFC normalization (it would need composition tables). Text
//! already in NFC — what keyboards and browsers produce — tokenizes identically; decomposed input such as
//! `e` + U+0301 gives different ids. Differences from OpenAI's original tokenizer (ftfy, HTML unescaping,
//! final sigma, special-token splitting) are listed in `tests/fixtures/make_clip_tokenizer_fixtures.py`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use serde_json::Value;

use super::unicode::{byte_to_char, flags};
use super::TokenizerError;

/// The sequence length of every CLIP text encoder Stable Diffusion uses.
pub const CLIP_MAX_LENGTH: usize = 77;
const BOS_TEXT: &str = "<|startoftext|>";
const EOS_TEXT: &str = "<|endoftext|>";
const END_OF_WORD: &str = "</w>";
/// transformers writes `model_max_length` = 1e30 when a tokenizer has no limit.
const NO_LIMIT: f64 = 1e15;
const MAX_LENGTH_CAP: u64 = 65536;

/// A CLIP tokenizer. Share it by reference; all methods take `&self`.
#[derive(Clone)]
pub struct ClipTokenizer {
    vocab: HashMap<String, u32>,
    /// (left id, right id) → (rank, merged id); a repeated merge keeps its last rank, as transformers.
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// special-token texts cut out of the raw input, longest first
    raw_special: Vec<(String, u32)>,
    /// special-token texts cut out of the normalized text (`"normalized": true`), longest first
    norm_special: Vec<(String, u32)>,
    bos: u32,
    eos: u32,
    pad: u32,
    unk: u32,
    max_length: usize,
}

impl std::fmt::Debug for ClipTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipTokenizer")
            .field("vocab_size", &self.vocab.len())
            .field("merges", &self.merges.len())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("pad", &self.pad)
            .field("max_length", &self.max_length)
            .finish_non_exhaustive()
    }
}

fn bad_json(file: &'static str, msg: impl std::fmt::Display) -> TokenizerError {
    TokenizerError::BadJson { file, msg: msg.to_string() }
}

/// A special token in tokenizer_config.json / special_tokens_map.json: a string, an AddedToken object
/// (`{"content": …, "normalized": …}`), or null/absent (→ `default`). Returns the text and whether it is
/// matched in the normalized text (only objects with `"normalized": true`), as transformers.
fn special_text(config: Option<&Value>, key: &'static str, default: &str) -> Result<(String, bool), TokenizerError> {
    match config.and_then(|c| c.get(key)) {
        None | Some(Value::Null) => Ok((default.to_string(), false)),
        Some(Value::String(s)) => Ok((s.clone(), false)),
        Some(Value::Object(o)) => match o.get("content") {
            Some(Value::String(s)) => Ok((s.clone(), o.get("normalized") == Some(&Value::Bool(true)))),
            _ => Err(bad_json("tokenizer_config.json", format!("{key} has no string \"content\""))),
        },
        Some(v) => Err(bad_json("tokenizer_config.json", format!("{key} is {v}, not a token"))),
    }
}

fn max_length(config: Option<&Value>) -> Result<usize, TokenizerError> {
    let v = match config.and_then(|c| c.get("model_max_length")) {
        None | Some(Value::Null) => return Ok(CLIP_MAX_LENGTH),
        Some(v) => v,
    };
    if v.as_f64().is_some_and(|x| x >= NO_LIMIT) {
        return Ok(CLIP_MAX_LENGTH);
    }
    match v.as_u64() {
        Some(n) if (2..=MAX_LENGTH_CAP).contains(&n) => usize::try_from(n).map_err(|_| TokenizerError::BadMaxLength(v.to_string())),
        _ => Err(TokenizerError::BadMaxLength(v.to_string())),
    }
}

impl ClipTokenizer {
    /// Build from the text of `vocab.json`, `merges.txt` and optionally `tokenizer_config.json` (or
    /// `special_tokens_map.json`: the same `bos_token` / `eos_token` / `unk_token` / `pad_token` keys).
    /// Without a config: bos `<|startoftext|>`, eos = unk = pad `<|endoftext|>`, 77 tokens (SD 1.x).
    pub fn from_files(
        vocab_json: &str,
        merges_txt: &str,
        tokenizer_config_json: Option<&str>,
    ) -> Result<Self, TokenizerError> {
        let vocab: HashMap<String, u32> =
            serde_json::from_str(vocab_json).map_err(|e| bad_json("vocab.json", e))?;
        if vocab.is_empty() {
            return Err(TokenizerError::EmptyVocab);
        }
        let mut by_id: HashMap<u32, &str> = HashMap::with_capacity(vocab.len());
        for (text, &id) in &vocab {
            if let Some(prev) = by_id.insert(id, text) {
                // report a deterministic one of the two texts
                let text = if prev < text.as_str() { prev } else { text.as_str() };
                return Err(TokenizerError::DuplicateToken { id, text: text.to_string() });
            }
        }

        let mut merges = HashMap::new();
        let mut rank = 0u32;
        for line in merges_txt.lines() {
            if line.starts_with("#version") || line.is_empty() {
                continue;
            }
            let index = rank as usize;
            let bad = || TokenizerError::BadMerge { index, merge: line.to_string() };
            let mut parts = line.split(' ');
            let (Some(a), Some(b), None) = (parts.next(), parts.next(), parts.next()) else { return Err(bad()) };
            if a.is_empty() || b.is_empty() {
                return Err(bad());
            }
            let id = |token: &str| {
                vocab.get(token).copied().ok_or_else(|| TokenizerError::MergeOutOfVocab {
                    index,
                    merge: line.to_string(),
                    token: token.to_string(),
                })
            };
            let pair = (id(a)?, id(b)?);
            merges.insert(pair, (rank, id(&format!("{a}{b}"))?));
            rank = rank.checked_add(1).ok_or(TokenizerError::VocabTooLarge(index))?;
        }

        let config: Option<Value> = match tokenizer_config_json {
            None => None,
            Some(s) => {
                let v: Value = serde_json::from_str(s).map_err(|e| bad_json("tokenizer_config.json", e))?;
                if !v.is_object() {
                    return Err(bad_json("tokenizer_config.json", "not a JSON object"));
                }
                Some(v)
            }
        };
        let lookup = |which: &'static str, default: &str| -> Result<(String, u32, bool), TokenizerError> {
            let (text, normalized) = special_text(config.as_ref(), which, default)?;
            match vocab.get(&text) {
                Some(&id) => Ok((text, id, normalized)),
                None => Err(TokenizerError::MissingSpecialToken { which, text }),
            }
        };
        let bos = lookup("bos_token", BOS_TEXT)?;
        let eos = lookup("eos_token", EOS_TEXT)?;
        let unk = lookup("unk_token", EOS_TEXT)?;
        let pad = lookup("pad_token", EOS_TEXT)?;
        let max_length = max_length(config.as_ref())?;
        // one entry per text; a later definition (bos, eos, unk, pad order) sets `normalized`, as transformers
        let mut special: Vec<(String, u32, bool)> = Vec::new();
        for (text, id, normalized) in [&bos, &eos, &unk, &pad] {
            special.retain(|(t, _, _)| t != text);
            if !text.is_empty() {
                special.push((text.clone(), *id, *normalized));
            }
        }
        special.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        let pick = |n: bool| special.iter().filter(|s| s.2 == n).map(|s| (s.0.clone(), s.1)).collect();
        let (raw_special, norm_special) = (pick(false), pick(true));
        Ok(Self { vocab, merges, raw_special, norm_special, bos: bos.1, eos: eos.1, pad: pad.1, unk: unk.1, max_length })
    }

    /// Text → ids, without BOS/EOS and without truncation. Never panics.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        for raw in split_specials(text, &self.raw_special) {
            let raw = match raw {
                Piece::Text(s) => s,
                Piece::Token(id) => {
                    out.push(id);
                    continue;
                }
            };
            // normalize: White_Space runs → " " (spaces only separate), per-character lower case
            let mut norm = String::with_capacity(raw.len());
            for c in raw.chars() {
                if flags(c).is_whitespace() {
                    norm.push(' ');
                } else {
                    norm.extend(c.to_lowercase());
                }
            }
            for piece in split_specials(&norm, &self.norm_special) {
                match piece {
                    Piece::Text(s) => self.encode_plain(s, &mut out),
                    Piece::Token(id) => out.push(id),
                }
            }
        }
        out
    }

    /// Exactly `max_length` ids, as `tokenizer(text, padding="max_length", truncation=True)`: BOS, the
    /// text's tokens truncated so that EOS fits, EOS, then the pad token.
    pub fn encode_padded(&self, text: &str) -> Vec<u32> {
        let mut ids = self.encode(text);
        ids.truncate(self.max_length.saturating_sub(2));
        let mut out = Vec::with_capacity(self.max_length);
        out.push(self.bos);
        out.extend_from_slice(&ids);
        out.push(self.eos);
        out.resize(self.max_length, self.pad);
        out
    }

    /// Pre-split and BPE one stretch of normalized text that holds no special-token text.
    fn encode_plain(&self, text: &str, out: &mut Vec<u32>) {
        let norm: Vec<char> = text.chars().collect();
        let mut i = 0;
        while let Some(&c) = norm.get(i) {
            let rest = norm.get(i..).unwrap_or(&[]);
            // CLIP's pattern keeps `<|startoftext|>` / `<|endoftext|>` whole, then the byte-level
            // pre-tokenizer's GPT-2 pattern cuts them into "<|", the word and "|>"
            if let Some(word) = ["startoftext", "endoftext"].into_iter().find(|w| {
                let lit = format!("<|{w}|>");
                rest.len() >= lit.chars().count() && lit.chars().zip(rest).all(|(a, &b)| a == b)
            }) {
                for p in ["<|", word, "|>"] {
                    self.bpe(p, out);
                }
                i += word.len() + 4;
                continue;
            }
            let f = flags(c);
            let len = if c == ' ' {
                i += 1;
                continue;
            } else if let Some(n) = contraction(rest) {
                n
            } else if f.is_letter() {
                rest.iter().take_while(|&&c| flags(c).is_letter()).count()
            } else if f.is_number() {
                1
            } else {
                let punct = |&&c: &&char| c != ' ' && !flags(c).is_letter() && !flags(c).is_number();
                rest.iter().take_while(punct).count()
            };
            let piece: String = norm.get(i..i + len).unwrap_or(&[]).iter().collect();
            self.bpe(&piece, out);
            i += len.max(1);
        }
    }

    /// BPE one pre-token, lowest rank first (ties: leftmost), as the `tokenizers` library.
    fn bpe(&self, piece: &str, out: &mut Vec<u32>) {
        const NONE: usize = usize::MAX;
        let n = piece.len();
        let mut sym = String::new();
        let mut ids: Vec<u32> = Vec::with_capacity(n);
        for (k, b) in piece.bytes().enumerate() {
            sym.clear();
            sym.push(byte_to_char(b));
            if k + 1 == n {
                sym.push_str(END_OF_WORD);
            }
            ids.push(self.vocab.get(&sym).copied().unwrap_or(self.unk));
        }
        let mut next: Vec<usize> = (1..=n).map(|k| if k < n { k } else { NONE }).collect();
        let mut prev: Vec<usize> = (0..n).map(|k| k.checked_sub(1).unwrap_or(NONE)).collect();
        let mut alive = vec![true; n];
        let mut heap = BinaryHeap::new();
        let pair = |ids: &[u32], a: usize, b: usize| -> Option<(u32, u32)> {
            self.merges.get(&(*ids.get(a)?, *ids.get(b)?)).copied()
        };
        for k in 0..n.saturating_sub(1) {
            if let Some((rank, merged)) = pair(&ids, k, k + 1) {
                heap.push(Reverse((rank, k, merged)));
            }
        }
        while let Some(Reverse((rank, k, merged))) = heap.pop() {
            let r = next.get(k).copied().unwrap_or(NONE);
            if !alive.get(k).copied().unwrap_or(false) || r == NONE || pair(&ids, k, r) != Some((rank, merged)) {
                continue;
            }
            let rr = next.get(r).copied().unwrap_or(NONE);
            if let (Some(id), Some(a), Some(nk)) = (ids.get_mut(k), alive.get_mut(r), next.get_mut(k)) {
                *id = merged;
                *a = false;
                *nk = rr;
            }
            if let Some(p) = prev.get_mut(rr) {
                *p = k;
            }
            let l = prev.get(k).copied().unwrap_or(NONE);
            for (a, b) in [(l, k), (k, rr)] {
                if let Some((rank, merged)) = pair(&ids, a, b) {
                    heap.push(Reverse((rank, a, merged)));
                }
            }
        }
        out.extend(ids.iter().zip(&alive).filter(|(_, &a)| a).map(|(&id, _)| id));
    }

    pub fn bos_id(&self) -> u32 {
        self.bos
    }
    pub fn eos_id(&self) -> u32 {
        self.eos
    }
    /// The padding id: `<|endoftext|>` for SD 1.x, `!` (id 0) for SD 2.x.
    pub fn pad_id(&self) -> u32 {
        self.pad
    }
    /// Characters missing from the vocabulary map here (`<|endoftext|>` in CLIP's files).
    pub fn unk_id(&self) -> u32 {
        self.unk
    }
    /// `model_max_length` (77), the length of [`Self::encode_padded`].
    pub fn max_length(&self) -> usize {
        self.max_length
    }
    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }
    /// The id of a vocabulary entry (byte-level text, `</w>` on word ends).
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.vocab.get(text).copied()
    }
}

enum Piece<'a> {
    Text(&'a str),
    Token(u32),
}

/// Cut `text` at every occurrence of a special token's text (leftmost; longest first at one position).
fn split_specials<'a>(text: &'a str, special: &[(String, u32)]) -> Vec<Piece<'a>> {
    let mut out = Vec::new();
    let (mut start, mut pos) = (0, 0);
    while pos < text.len() {
        let rest = text.get(pos..).unwrap_or("");
        if let Some((s, id)) = special.iter().find(|(s, _)| rest.starts_with(s.as_str())) {
            if pos > start {
                out.push(Piece::Text(text.get(start..pos).unwrap_or("")));
            }
            out.push(Piece::Token(*id));
            pos += s.len();
            start = pos;
        } else {
            pos += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    if start < text.len() {
        out.push(Piece::Text(text.get(start..).unwrap_or("")));
    }
    out
}

/// Length of CLIP's contraction match (`'s 't 're 've 'm 'll 'd`) at the start of `s`, if any.
fn contraction(s: &[char]) -> Option<usize> {
    match s {
        ['\'', 's' | 't' | 'm' | 'd', ..] => Some(2),
        ['\'', 'r', 'e', ..] | ['\'', 'v', 'e', ..] | ['\'', 'l', 'l', ..] => Some(3),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contractions_and_pieces() {
        assert_eq!(contraction(&['\'', 's', 'x']), Some(2));
        assert_eq!(contraction(&['\'', 'l', 'l']), Some(3));
        assert_eq!(contraction(&['\'', 'l']), None);
        assert_eq!(contraction(&['x']), None);
    }

    #[test]
    fn byte_vocab_without_merges() {
        // a vocab of just the byte characters (with and without </w>) and the specials
        let mut vocab = serde_json::Map::new();
        for b in 0..=255u8 {
            let c = byte_to_char(b).to_string();
            let n = vocab.len();
            vocab.insert(c.clone(), n.into());
            vocab.insert(format!("{c}</w>"), (n + 1).into());
        }
        let n = vocab.len();
        vocab.insert(BOS_TEXT.into(), n.into());
        vocab.insert(EOS_TEXT.into(), (n + 1).into());
        let json = Value::Object(vocab).to_string();
        let t = ClipTokenizer::from_files(&json, "#version: 0.2\n", None).unwrap();
        let ids = t.encode("Hi!");
        assert_eq!(ids, vec![t.token_id("h").unwrap(), t.token_id("i</w>").unwrap(), t.token_id("!</w>").unwrap()]);
        let p = t.encode_padded("");
        assert_eq!(p.len(), CLIP_MAX_LENGTH);
        assert_eq!(&p[..3], &[t.bos_id(), t.eos_id(), t.pad_id()]);
    }
}
