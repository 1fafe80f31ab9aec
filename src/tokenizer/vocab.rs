//! Building a [`Tokenizer`] from [`TokenizerData`]: validation, the per-family defaults, and
//! llama.cpp's load-time fix-ups (`llama_vocab::impl::load`): token attributes from types,
//! special-id defaults, EOT/EOM/FIM detection by token text, the end-of-generation set, and the
//! special-token cache used to split `<|im_start|>`-like text out before BPE/SPM.

use std::collections::{BTreeSet, HashMap};

use super::bpe::Merges;
use super::pretok::PreRegex;
use super::{Kind, Tokenizer, TokenizerData, TokenizerError};

// llama.cpp `llama_token_attr` bits
pub(crate) const ATTR_UNKNOWN: u32 = 1 << 0;
pub(crate) const ATTR_UNUSED: u32 = 1 << 1;
pub(crate) const ATTR_NORMAL: u32 = 1 << 2;
pub(crate) const ATTR_CONTROL: u32 = 1 << 3;
pub(crate) const ATTR_USER_DEFINED: u32 = 1 << 4;
pub(crate) const ATTR_BYTE: u32 = 1 << 5;

/// `tokenizer.ggml.token_type` value → attribute (llama.cpp: anything else is "undefined" = 0).
fn attr_of_type(t: i32) -> u32 {
    match t {
        1 => ATTR_NORMAL,
        2 => ATTR_UNKNOWN,
        3 => ATTR_CONTROL,
        4 => ATTR_USER_DEFINED,
        5 => ATTR_UNUSED,
        6 => ATTR_BYTE,
        _ => 0,
    }
}

/// Per-`pre` settings of byte-level BPE: (regex family, clean_spaces, ignore_merges, add_bos).
fn bpe_pre(pre: Option<&str>) -> Option<(PreRegex, bool, bool, bool)> {
    use PreRegex::*;
    let p = match pre {
        None | Some("default") => (Default, true, false, false),
        Some(
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0" | "lfm2"
            | "jina-v5-nano",
        ) => (Llama3, true, true, true),
        Some("dbrx" | "smaug-bpe") => (Llama3, true, false, false),
        Some(
            "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es" | "jina-v2-de" | "a.x-4.0" | "mellum"
            | "modern-bert" | "mpt" | "olmo" | "jais" | "exaone4",
        ) => (Gpt2, true, false, false),
        Some("trillion" | "granite-docling") => (Gpt2, false, false, false),
        Some("starcoder" | "refact" | "codeshell" | "exaone" | "minerva-7b" | "mellum2") => {
            (DigitsGpt2, true, false, false)
        }
        Some("smollm" | "command-r") => (DigitsGpt2, false, false, false),
        Some("qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "hunyuan" | "solar-open") => {
            (Qwen2, false, false, false)
        }
        Some("stablelm2" | "megrez") => (Qwen2, true, false, false),
        Some(_) => return None,
    };
    Some(p)
}

const EOT_NAMES: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const EOM_NAMES: &[&str] = &["<|eom_id|>"];
const FIM_PRE: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP: &[&str] = &["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"];
const FIM_SEP: &[&str] = &["<|file_sep|>"];
const EOG_NAMES: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

impl Tokenizer {
    /// Validate `data` and build the tokenizer (llama.cpp `llama_vocab::impl::load`).
    pub fn new(data: TokenizerData) -> Result<Self, TokenizerError> {
        let TokenizerData { model, pre, tokens, scores, token_types, merges, .. } = data;
        let n = tokens.len();
        if n == 0 {
            return Err(TokenizerError::EmptyVocab);
        }
        if n > i32::MAX as usize {
            return Err(TokenizerError::VocabTooLarge(n));
        }
        let check_len = |what: &'static str, len: usize| {
            if len != n {
                Err(TokenizerError::LengthMismatch { what, len, n_tokens: n })
            } else {
                Ok(())
            }
        };
        let is_spm = match model.as_str() {
            "llama" => true,
            "gpt2" => false,
            other => return Err(TokenizerError::UnknownModel(other.to_string())),
        };
        let (kind, clean_spaces, family_add_bos) = if is_spm {
            (Kind::Spm, false, true)
        } else {
            let (regex, clean, ignore_merges, add_bos) =
                bpe_pre(pre.as_deref()).ok_or_else(|| TokenizerError::UnknownPre(pre.clone().unwrap_or_default()))?;
            let merges = merges.as_deref().ok_or(TokenizerError::MissingKey("tokenizer.ggml.merges"))?;
            let merges = Merges::new(merges).map_err(|index| TokenizerError::BadMerge {
                index,
                merge: merges.get(index).cloned().unwrap_or_default(),
            })?;
            (Kind::Bpe { regex, ignore_merges, merges }, clean, add_bos)
        };

        let scores = match scores {
            Some(s) => {
                check_len("tokenizer.ggml.scores", s.len())?;
                if let Some(id) = s.iter().position(|x| x.is_nan()) {
                    return Err(TokenizerError::InvalidScore { id: id as u32 });
                }
                s
            }
            None => vec![0.0; n],
        };
        let mut attrs: Vec<u32> = match &token_types {
            Some(t) => {
                check_len("tokenizer.ggml.token_type", t.len())?;
                t.iter().map(|&t| attr_of_type(t)).collect()
            }
            None => vec![ATTR_NORMAL; n],
        };

        let mut tokens = tokens;
        let mut token_to_id = HashMap::with_capacity(n);
        for (i, t) in tokens.iter_mut().enumerate() {
            if t.is_empty() {
                *t = format!("[EMPTY_{i}]");
            }
            if token_to_id.insert(t.clone(), i as u32).is_some() {
                return Err(TokenizerError::DuplicateToken { id: i as u32, text: t.clone() });
            }
        }

        // byte tokens: llama.cpp reads the byte from text[3..5] of every BYTE-typed token
        let mut byte_of = HashMap::new();
        for (i, (t, &a)) in tokens.iter().zip(&attrs).enumerate() {
            if a & ATTR_BYTE != 0 {
                let b = parse_byte_token(t)
                    .ok_or_else(|| TokenizerError::BadByteToken { id: i as u32, text: t.clone() })?;
                byte_of.insert(i as u32, b);
            }
        }
        let mut byte_tokens = [None; 256];
        if is_spm {
            for (b, slot) in byte_tokens.iter_mut().enumerate() {
                let hex = format!("<0x{b:02X}>");
                *slot = token_to_id.get(&hex).copied().or_else(|| {
                    u8::try_from(b)
                        .ok()
                        .filter(u8::is_ascii)
                        .and_then(|b| token_to_id.get(&char::from(b).to_string()).copied())
                });
            }
        }

        // special ids: family defaults, then the keys; every id must be inside the vocab
        let (def_bos, def_eos, def_unk) = if is_spm { (Some(1), Some(2), Some(0)) } else { (Some(11), Some(11), None) };
        let pick = |which: &'static str, key: Option<u32>, default: Option<u32>| match key.or(default) {
            Some(id) if id as usize >= n => {
                Err(TokenizerError::SpecialIdOutOfRange { which, id: u64::from(id), n_vocab: n })
            }
            other => Ok(other),
        };
        let bos = pick("bos", data.bos, def_bos)?;
        let eos = pick("eos", data.eos, def_eos)?;
        let mut eot = pick("eot", data.eot, None)?;
        let unk = pick("unk", data.unk, def_unk)?;
        let pad = pick("pad", data.pad, None)?;
        let add_bos = data.add_bos.unwrap_or(family_add_bos);
        let add_eos = data.add_eos.unwrap_or(false);
        let add_space_prefix = data.add_space_prefix.unwrap_or(is_spm);

        // detection by text: llama.cpp takes the first match in std::unordered_map order (platform
        // dependent when several names are present); we take the first name of its list present
        let find = |names: &[&str], attrs: &mut [u32]| -> Option<u32> {
            let id = names.iter().find_map(|name| token_to_id.get(*name).copied())?;
            if let Some(a) = attrs.get_mut(id as usize) {
                *a |= ATTR_CONTROL;
            }
            Some(id)
        };
        if eot.is_none() {
            eot = find(EOT_NAMES, &mut attrs);
        }
        let eom = find(EOM_NAMES, &mut attrs);
        let _fim = (find(FIM_PRE, &mut attrs), find(FIM_SUF, &mut attrs), find(FIM_MID, &mut attrs));
        let fim_pad = find(FIM_PAD, &mut attrs);
        let fim_rep = find(FIM_REP, &mut attrs);
        let fim_sep = find(FIM_SEP, &mut attrs);

        for (t, a) in tokens.iter().zip(attrs.iter_mut()) {
            if *a & ATTR_CONTROL != 0 && t.contains("unused") {
                *a |= ATTR_UNUSED;
            }
        }

        let mut eog: BTreeSet<u32> = [fim_pad, fim_rep, fim_sep].into_iter().flatten().collect();
        for name in EOG_NAMES {
            if let Some(&id) = token_to_id.get(*name) {
                eog.insert(id);
                if let Some(a) = attrs.get_mut(id as usize) {
                    *a |= ATTR_CONTROL;
                }
            }
        }
        for name in ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"] {
            if let Some(a) = token_to_id.get(name).and_then(|&id| attrs.get_mut(id as usize)) {
                *a = ATTR_USER_DEFINED;
            }
        }
        eog.extend([eos, eot, eom].into_iter().flatten());

        let text_in_eog =
            |eog: &BTreeSet<u32>, name: &str| token_to_id.get(name).filter(|id| eog.contains(id)).copied();
        // o200k_harmony / solar-open: "<|end|>" is not end-of-generation there
        let has = |name: &str| text_in_eog(&eog, name).is_some();
        if let Some(end) = text_in_eog(&eog, "<|end|>") {
            if (has("<|return|>") && has("<|call|>")) || (has("<|calls|>") && has("<|flush|>")) {
                eog.remove(&end);
                if let Some(a) = attrs.get_mut(end as usize) {
                    *a = ATTR_USER_DEFINED;
                }
            }
        }
        // gemma4 / plamo: "</s>" is a normal token there
        if let Some(s) = text_in_eog(&eog, "</s>") {
            if text_in_eog(&eog, "<|tool_response>").is_some() || text_in_eog(&eog, "<|plamo:eos|>").is_some() {
                eog.remove(&s);
                if let Some(a) = attrs.get_mut(s as usize) {
                    *a = ATTR_NORMAL;
                }
            }
        }

        // special-token cache: longest text first
        let mut special: Vec<u32> = (0..n as u32)
            .filter(|&id| {
                attrs.get(id as usize).is_some_and(|a| a & (ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN) != 0)
            })
            .collect();
        special.sort_by_key(|&id| std::cmp::Reverse(tokens.get(id as usize).map_or(0, String::len)));

        Ok(Tokenizer {
            kind,
            model,
            pre,
            tokens,
            scores,
            attrs,
            token_to_id,
            byte_of,
            byte_tokens,
            bos,
            eos,
            eot,
            unk,
            pad,
            add_bos,
            add_eos,
            add_space_prefix,
            clean_spaces,
            eog,
            special,
        })
    }
}

/// `<0xNN>` → NN (the only form accepted for BYTE-typed tokens).
fn parse_byte_token(t: &str) -> Option<u8> {
    let hex = t.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}
