//! SentencePiece (`tokenizer.ggml.model == "llama"`): llama.cpp's `llm_tokenizer_spm_session`.
//!
//! The caller has already prefixed the space (when asked) and replaced every space with "▁".
//! Symbols start as single UTF-8 characters; the adjacent pair whose concatenation is a token with
//! the highest score (ties: leftmost) is merged until none is left. A final symbol that is not a
//! token falls back to its bytes as `<0xNN>` tokens (or a one-byte token; else `unk`, where
//! llama.cpp would throw).

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use super::unicode::utf8_symbols;

#[derive(Clone, Copy)]
struct Sym {
    start: usize,
    n: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// A candidate merge: max score first, then the smallest `left`.
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    fn cmp(&self, other: &Self) -> Ordering {
        // scores are validated finite-or-infinite (never NaN); -0.0 == 0.0 as in C++
        self.score.partial_cmp(&other.score).unwrap_or(Ordering::Equal).then_with(|| other.left.cmp(&self.left))
    }
}

/// What the SPM merger needs from the vocabulary.
pub(crate) struct SpmVocab<'a> {
    pub token_to_id: &'a HashMap<String, u32>,
    pub scores: &'a [f32],
    /// `<0xNN>` (or one-byte) token of every byte, if the vocab has one.
    pub byte_tokens: &'a [Option<u32>; 256],
    pub unk: Option<u32>,
}

/// Tokenize one escaped fragment, appending ids to `out`.
pub(crate) fn tokenize(text: &str, v: &SpmVocab<'_>, out: &mut Vec<u32>) {
    let spans = utf8_symbols(text.as_bytes());
    let count = spans.len();
    if count == 0 {
        return;
    }
    let mut syms: Vec<Sym> = spans
        .iter()
        .enumerate()
        .map(|(i, &(start, n))| Sym {
            start,
            n,
            prev: i.checked_sub(1),
            next: if i + 1 < count { Some(i + 1) } else { None },
        })
        .collect();

    let mut queue: BinaryHeap<Bigram> = BinaryHeap::new();
    let try_add = |queue: &mut BinaryHeap<Bigram>, syms: &[Sym], l: Option<usize>, r: Option<usize>| {
        let (Some(l), Some(r)) = (l, r) else { return };
        let (Some(ls), Some(rs)) = (syms.get(l), syms.get(r)) else { return };
        let size = ls.n + rs.n;
        let Some(piece) = text.get(ls.start..ls.start + size) else { return };
        let Some(&id) = v.token_to_id.get(piece) else { return };
        let Some(&score) = v.scores.get(id as usize) else { return };
        queue.push(Bigram { score, left: l, right: r, size });
    };
    for i in 1..count {
        try_add(&mut queue, &syms, Some(i - 1), Some(i));
    }

    while let Some(b) = queue.pop() {
        let (Some(&ls), Some(&rs)) = (syms.get(b.left), syms.get(b.right)) else { continue };
        if ls.n == 0 || rs.n == 0 || ls.n + rs.n != b.size {
            continue;
        }
        if let Some(s) = syms.get_mut(b.left) {
            s.n += rs.n;
            s.next = rs.next;
        }
        if let Some(s) = syms.get_mut(b.right) {
            s.n = 0;
        }
        if let Some(nx) = rs.next.and_then(|nx| syms.get_mut(nx)) {
            nx.prev = Some(b.left);
        }
        let (prev, next) = syms.get(b.left).map(|s| (s.prev, s.next)).unwrap_or((None, None));
        try_add(&mut queue, &syms, prev, Some(b.left));
        try_add(&mut queue, &syms, Some(b.left), next);
    }

    // walk the chain from the first symbol (llama.cpp `resegment`: a merged symbol is always a
    // token, so only unmerged characters can fall back to bytes)
    let mut cur = Some(0usize);
    while let Some(i) = cur {
        let Some(&s) = syms.get(i) else { break };
        cur = s.next;
        let piece = text.get(s.start..s.start + s.n).unwrap_or("");
        if let Some(&id) = v.token_to_id.get(piece) {
            out.push(id);
            continue;
        }
        for b in piece.bytes() {
            if let Some(id) = v.byte_tokens.get(usize::from(b)).copied().flatten().or(v.unk) {
                out.push(id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_by_score_and_falls_back_to_bytes() {
        let toks = ["▁", "a", "b", "ab", "▁ab", "<0xE4>", "<0xB8>", "<0xAD>"];
        let scores = [0.0, 0.0, 0.0, -1.0, -2.0, 0.0, 0.0, 0.0];
        let map: HashMap<String, u32> = toks.iter().enumerate().map(|(i, t)| (t.to_string(), i as u32)).collect();
        let mut bytes = [None; 256];
        bytes[0xE4] = Some(5);
        bytes[0xB8] = Some(6);
        bytes[0xAD] = Some(7);
        let v = SpmVocab { token_to_id: &map, scores: &scores, byte_tokens: &bytes, unk: None };
        let mut out = vec![];
        tokenize("▁ab中", &v, &mut out);
        assert_eq!(out, [4, 5, 6, 7]);
    }
}
