//! Byte-level BPE (`tokenizer.ggml.model == "gpt2"`): merge one pre-tokenized, GPT-2-byte-encoded
//! word by merge rank, exactly as llama.cpp's `llm_tokenizer_bpe_session::tokenize`.
//!
//! Symbols start as single UTF-8 characters of the encoded word; the adjacent pair with the lowest
//! rank (ties: leftmost) is merged until no pair has a rank. A final symbol that is not a token is
//! emitted byte by byte, each byte looked up as a one-byte token and dropped if absent (as llama.cpp).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::unicode::utf8_symbols;

/// Merge ranks keyed by `"left right"` (the GGUF merge string). Byte-encoded symbols never contain
/// a raw space, so this key is unambiguous for every lookup the merger makes.
#[derive(Clone)]
pub(crate) struct Merges {
    ranks: HashMap<String, u32>,
}

impl Merges {
    /// Build from GGUF merge strings; the rank is the index, the first occurrence wins (llama.cpp
    /// `emplace`). Returns the index of the first entry with no separating space after position 0.
    pub(crate) fn new(merges: &[String]) -> Result<Self, usize> {
        let mut ranks = HashMap::with_capacity(merges.len());
        for (i, m) in merges.iter().enumerate() {
            // llama.cpp: word.find(' ', 1)
            let has_sep = m.char_indices().any(|(p, c)| p >= 1 && c == ' ');
            if !has_sep {
                return Err(i);
            }
            let rank = u32::try_from(i).map_err(|_| i)?;
            ranks.entry(m.clone()).or_insert(rank);
        }
        Ok(Self { ranks })
    }

    fn rank(&self, key: &mut String, left: &str, right: &str) -> Option<u32> {
        key.clear();
        key.push_str(left);
        key.push(' ');
        key.push_str(right);
        self.ranks.get(key.as_str()).copied()
    }
}

#[derive(Clone, Copy)]
struct Sym {
    start: usize,
    n: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// Tokenize one byte-encoded word, appending ids to `out`.
pub(crate) fn merge_word(
    word: &str,
    merges: &Merges,
    vocab: &HashMap<String, u32>,
    ignore_merges: bool,
    out: &mut Vec<u32>,
) {
    if word.is_empty() {
        return;
    }
    if ignore_merges {
        if let Some(&id) = vocab.get(word) {
            out.push(id);
            return;
        }
    }
    let spans = utf8_symbols(word.as_bytes());
    let count = spans.len();
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

    let text = |s: &Sym| word.get(s.start..s.start + s.n).unwrap_or("");
    let mut key = String::new();
    // (rank, left, right, size): the smallest rank first, then the leftmost
    let mut queue: BinaryHeap<Reverse<(u32, usize, usize, usize)>> = BinaryHeap::new();
    let mut add = |queue: &mut BinaryHeap<_>, syms: &[Sym], l: Option<usize>, r: Option<usize>| {
        let (Some(l), Some(r)) = (l, r) else { return };
        let (Some(ls), Some(rs)) = (syms.get(l), syms.get(r)) else { return };
        if let Some(rank) = merges.rank(&mut key, text(ls), text(rs)) {
            queue.push(Reverse((rank, l, r, ls.n + rs.n)));
        }
    };
    for i in 1..count {
        add(&mut queue, &syms, Some(i - 1), Some(i));
    }

    while let Some(Reverse((_, l, r, size))) = queue.pop() {
        let (Some(&ls), Some(&rs)) = (syms.get(l), syms.get(r)) else { continue };
        // outdated: one side already merged away, or either side grew (the text differs)
        if ls.n == 0 || rs.n == 0 || ls.n + rs.n != size {
            continue;
        }
        if let Some(s) = syms.get_mut(l) {
            s.n += rs.n;
            s.next = rs.next;
        }
        if let Some(s) = syms.get_mut(r) {
            s.n = 0;
        }
        if let Some(nx) = rs.next.and_then(|nx| syms.get_mut(nx)) {
            nx.prev = Some(l);
        }
        let (prev, next) = syms.get(l).map(|s| (s.prev, s.next)).unwrap_or((None, None));
        add(&mut queue, &syms, prev, Some(l));
        add(&mut queue, &syms, Some(l), next);
    }

    let mut byte = [0u8; 4];
    for s in syms.iter().filter(|s| s.n > 0) {
        let t = text(s);
        if let Some(&id) = vocab.get(t) {
            out.push(id);
            continue;
        }
        for b in t.bytes() {
            // llama.cpp looks up the raw byte as a one-byte string: only ASCII can be a valid token
            if b.is_ascii() {
                let one: &str = char::from(b).encode_utf8(&mut byte);
                if let Some(&id) = vocab.get(one) {
                    out.push(id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_by_rank() {
        let toks = ["a", "b", "c", "ab", "bc", "abc"];
        let vocab: HashMap<String, u32> = toks.iter().enumerate().map(|(i, t)| (t.to_string(), i as u32)).collect();
        let merges = Merges::new(&["b c".to_string(), "a b".to_string(), "a bc".to_string()]).unwrap();
        let mut out = vec![];
        merge_word("abc", &merges, &vocab, false, &mut out);
        assert_eq!(out, [5]);
        out.clear();
        merge_word("abx", &merges, &vocab, false, &mut out);
        assert_eq!(out, [3]); // "x" is not a token and is dropped
        assert!(Merges::new(&["ab".to_string()]).is_err());
        assert!(Merges::new(&[" ab".to_string()]).is_err());
    }
}
