//! Tokenizers built from GGUF metadata, following llama.cpp's behaviour.
//!
//! Two vocabulary kinds (`tokenizer.ggml.model`):
//! - `llama`: SentencePiece-style. Spaces become U+2581, one U+2581 is prepended
//!   (`add_space_prefix`), then neighbouring symbols (starting from UTF-8 characters) are merged
//!   best score first (ties: leftmost) while the merged text is a vocabulary entry. Symbols that
//!   are not in the vocabulary fall back to `<0xXX>` byte tokens.
//! - `gpt2`: byte-level BPE. The text is split into pre-tokens (Llama 3's or GPT-2's pattern,
//!   from `tokenizer.ggml.pre`), each pre-token's bytes are mapped to printable characters, and
//!   merges are applied lowest rank first (ties: leftmost).
//!
//! Control and unknown tokens are only produced from text when asked (`parse_special`), as
//! llama.cpp's `parse_special`; user-defined tokens are always split out first.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use regex::Regex;

use crate::gguf::{Gguf, Value};

/// SentencePiece's visible space, U+2581.
const SPACE_MARK: &str = "\u{2581}";

/// Token ids llama.cpp treats as end-of-turn when the file names none (`special_eot_id`).
const EOT_TEXTS: [&str; 5] = [
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
];

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("tokenizer metadata '{0}' is missing")]
    Missing(&'static str),
    #[error("tokenizer metadata '{key}' has the wrong type (want {want})")]
    WrongType {
        key: &'static str,
        want: &'static str,
    },
    #[error("tokenizer model '{0}' is not supported (llama, gpt2 are)")]
    UnknownModel(String),
    #[error(
        "pre-tokenizer '{0}' is not supported (llama-bpe, llama3, llama-v3, gpt-2, default are)"
    )]
    UnknownPre(String),
    #[error("'{key}' has {got} entries but the vocabulary has {want}")]
    Length {
        key: &'static str,
        got: usize,
        want: usize,
    },
    #[error("merge {index} ('{text}') is not two space-separated parts")]
    BadMerge { index: usize, text: String },
    #[error("'{key}' = {id} is outside the vocabulary of {n_vocab}")]
    IdOutOfRange {
        key: &'static str,
        id: u64,
        n_vocab: usize,
    },
    #[error("the vocabulary is empty")]
    Empty,
    #[error("character class pattern: {0}")]
    Regex(#[from] regex::Error),
}

/// Vocabulary kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Model {
    /// `llama`: SentencePiece-style score merges with byte fallback.
    #[default]
    Spm,
    /// `gpt2`: byte-level BPE with rank merges.
    Bpe,
}

/// How byte-level BPE splits text before merging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PreTokenizer {
    /// Llama 3 (`llama-bpe`): contractions, letters with one leading non-letter, digits in
    /// groups of 1-3, punctuation runs, newlines, whitespace.
    #[default]
    Llama3,
    /// GPT-2: contractions, ` ?letters`, ` ?digits`, ` ?punctuation`, whitespace.
    Gpt2,
}

/// `tokenizer.ggml.token_type` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    Undefined,
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenType {
    pub fn from_id(id: i64) -> TokenType {
        match id {
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => TokenType::Undefined,
        }
    }

    /// Split out of text before the vocabulary algorithm runs (llama.cpp's special-token cache).
    fn is_special(self) -> bool {
        matches!(
            self,
            TokenType::Control | TokenType::UserDefined | TokenType::Unknown
        )
    }
}

/// The plain parts a tokenizer is made of (what a GGUF file stores).
#[derive(Debug, Clone, Default)]
pub struct TokenizerSpec {
    pub model: Model,
    /// Only used by [`Model::Bpe`].
    pub pre: PreTokenizer,
    pub tokens: Vec<String>,
    /// Merge priority for [`Model::Spm`] (higher first); empty means all zero.
    pub scores: Vec<f32>,
    /// Empty means all [`TokenType::Normal`].
    pub types: Vec<TokenType>,
    /// `"left right"` pairs, highest priority first ([`Model::Bpe`]).
    pub merges: Vec<String>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub unk: Option<u32>,
    /// End of turn; when `None`, looked up by text as llama.cpp does (`<|eot_id|>`, ...).
    pub eot: Option<u32>,
    /// End of message; when `None`, `<|eom_id|>` if present.
    pub eom: Option<u32>,
    /// Whether the model wants a BOS (`add_bos_token`); see [`Tokenizer::wants_bos`].
    pub add_bos: bool,
    /// Prepend one space to text ([`Model::Spm`] default).
    pub add_space_prefix: bool,
    /// Use a pre-token directly when it is a vocabulary entry (llama.cpp: Llama 3 vocabularies).
    pub ignore_merges: bool,
}

impl TokenizerSpec {
    /// A SentencePiece-style vocabulary with llama.cpp's defaults (space prefix, BOS wanted).
    pub fn spm(tokens: Vec<String>, scores: Vec<f32>, types: Vec<TokenType>) -> TokenizerSpec {
        TokenizerSpec {
            model: Model::Spm,
            tokens,
            scores,
            types,
            add_bos: true,
            add_space_prefix: true,
            ..TokenizerSpec::default()
        }
    }

    /// A byte-level BPE vocabulary with llama.cpp's defaults for `pre`.
    pub fn bpe(tokens: Vec<String>, merges: Vec<String>, pre: PreTokenizer) -> TokenizerSpec {
        let llama3 = pre == PreTokenizer::Llama3;
        TokenizerSpec {
            model: Model::Bpe,
            pre,
            tokens,
            merges,
            add_bos: llama3,
            ignore_merges: llama3,
            ..TokenizerSpec::default()
        }
    }
}

/// A piece of input during special-token partitioning.
#[derive(Debug, Clone, Copy)]
enum Fragment<'a> {
    Text(&'a str),
    Token(u32),
}

/// Character classes the pre-tokenizers need.
#[derive(Debug, Clone, Copy, Default)]
struct Class {
    letter: bool,
    number: bool,
    space: bool,
}

impl Class {
    fn other(self) -> bool {
        !(self.letter || self.number || self.space)
    }
}

/// A tokenizer built from a vocabulary; see the module documentation.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    model: Model,
    pre: PreTokenizer,
    tokens: Vec<String>,
    scores: Vec<f32>,
    types: Vec<TokenType>,
    ids: HashMap<String, u32>,
    /// left -> right -> rank.
    merges: HashMap<String, HashMap<String, u32>>,
    /// Control, user-defined and unknown tokens, longest text first.
    special: Vec<u32>,
    /// What each token prints as (control and unknown tokens print nothing).
    pieces: Vec<Vec<u8>>,
    /// SPM: the token for each byte (`<0xXX>`, else the one-byte text).
    byte_tokens: Vec<Option<u32>>,
    /// BPE: byte -> printable character.
    byte_chars: [char; 256],
    bos: Option<u32>,
    eos: Option<u32>,
    unk: Option<u32>,
    eot: Option<u32>,
    eom: Option<u32>,
    add_bos: bool,
    add_space_prefix: bool,
    ignore_merges: bool,
    letter: Regex,
    number: Regex,
}

impl Tokenizer {
    /// Build from `tokenizer.ggml.*` metadata.
    pub fn from_gguf(g: &Gguf) -> Result<Tokenizer, TokenizerError> {
        let model = match str_key(g, "tokenizer.ggml.model")? {
            Some("llama") => Model::Spm,
            Some("gpt2") => Model::Bpe,
            Some(other) => return Err(TokenizerError::UnknownModel(other.to_string())),
            None => return Err(TokenizerError::Missing("tokenizer.ggml.model")),
        };
        let tokens = array_key(g, "tokenizer.ggml.tokens")?
            .ok_or(TokenizerError::Missing("tokenizer.ggml.tokens"))?
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or(TokenizerError::WrongType {
                key: "tokenizer.ggml.tokens",
                want: "array of strings",
            })?;
        let scores = match array_key(g, "tokenizer.ggml.scores")? {
            Some(a) => a
                .iter()
                .map(Value::as_f32)
                .collect::<Option<Vec<_>>>()
                .ok_or(TokenizerError::WrongType {
                    key: "tokenizer.ggml.scores",
                    want: "array of numbers",
                })?,
            None => Vec::new(),
        };
        let types = match array_key(g, "tokenizer.ggml.token_type")? {
            Some(a) => a
                .iter()
                .map(|v| match *v {
                    Value::I32(x) => Some(TokenType::from_id(x.into())),
                    _ => v
                        .as_u64()
                        .map(|x| TokenType::from_id(i64::try_from(x).unwrap_or(0))),
                })
                .collect::<Option<Vec<_>>>()
                .ok_or(TokenizerError::WrongType {
                    key: "tokenizer.ggml.token_type",
                    want: "array of integers",
                })?,
            None => Vec::new(),
        };
        let merges = match array_key(g, "tokenizer.ggml.merges")? {
            Some(a) => a
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or(TokenizerError::WrongType {
                    key: "tokenizer.ggml.merges",
                    want: "array of strings",
                })?,
            None if model == Model::Bpe => {
                return Err(TokenizerError::Missing("tokenizer.ggml.merges"))
            }
            None => Vec::new(),
        };

        let mut spec = match model {
            Model::Spm => {
                let mut s = TokenizerSpec::spm(tokens, scores, types);
                // llama.cpp's defaults for SentencePiece vocabularies.
                let n = s.tokens.len();
                s.unk = (n > 0).then_some(0);
                s.bos = (n > 1).then_some(1);
                s.eos = (n > 2).then_some(2);
                s
            }
            Model::Bpe => {
                let pre = match str_key(g, "tokenizer.ggml.pre")? {
                    Some("llama-bpe" | "llama3" | "llama-v3") => PreTokenizer::Llama3,
                    // llama.cpp's "default" adds digit and punctuation splits; see the README.
                    None | Some("default" | "gpt-2" | "gpt2" | "mpt" | "olmo" | "jais") => {
                        PreTokenizer::Gpt2
                    }
                    Some(other) => return Err(TokenizerError::UnknownPre(other.to_string())),
                };
                let mut s = TokenizerSpec::bpe(tokens, merges, pre);
                s.scores = scores;
                s.types = types;
                s
            }
        };
        let n_vocab = spec.tokens.len();
        let id_key = |key: &'static str| -> Result<Option<u32>, TokenizerError> {
            match g.get(key) {
                None => Ok(None),
                Some(v) => {
                    let id = v.as_u64().ok_or(TokenizerError::WrongType {
                        key,
                        want: "unsigned integer",
                    })?;
                    match u32::try_from(id) {
                        Ok(id) if (id as usize) < n_vocab => Ok(Some(id)),
                        _ => Err(TokenizerError::IdOutOfRange { key, id, n_vocab }),
                    }
                }
            }
        };
        if let Some(id) = id_key("tokenizer.ggml.bos_token_id")? {
            spec.bos = Some(id);
        }
        if let Some(id) = id_key("tokenizer.ggml.eos_token_id")? {
            spec.eos = Some(id);
        }
        if let Some(id) = id_key("tokenizer.ggml.unknown_token_id")? {
            spec.unk = Some(id);
        }
        spec.eot = id_key("tokenizer.ggml.eot_token_id")?;
        spec.eom = id_key("tokenizer.ggml.eom_token_id")?;
        if let Some(b) = bool_key(g, "tokenizer.ggml.add_bos_token")? {
            spec.add_bos = b;
        }
        if let Some(b) = bool_key(g, "tokenizer.ggml.add_space_prefix")? {
            spec.add_space_prefix = b;
        }
        Tokenizer::new(spec)
    }

    /// Build from plain parts.
    pub fn new(spec: TokenizerSpec) -> Result<Tokenizer, TokenizerError> {
        let n = spec.tokens.len();
        if n == 0 {
            return Err(TokenizerError::Empty);
        }
        let scores = if spec.scores.is_empty() {
            vec![0.0; n]
        } else if spec.scores.len() == n {
            spec.scores
        } else {
            return Err(TokenizerError::Length {
                key: "scores",
                got: spec.scores.len(),
                want: n,
            });
        };
        let types = if spec.types.is_empty() {
            vec![TokenType::Normal; n]
        } else if spec.types.len() == n {
            spec.types
        } else {
            return Err(TokenizerError::Length {
                key: "token_type",
                got: spec.types.len(),
                want: n,
            });
        };
        for (key, id) in [
            ("bos", spec.bos),
            ("eos", spec.eos),
            ("unk", spec.unk),
            ("eot", spec.eot),
            ("eom", spec.eom),
        ] {
            if let Some(id) = id.filter(|&id| id as usize >= n) {
                return Err(TokenizerError::IdOutOfRange {
                    key,
                    id: id.into(),
                    n_vocab: n,
                });
            }
        }

        // A later duplicate wins, as in llama.cpp's token_to_id map.
        let mut ids = HashMap::with_capacity(n);
        for (i, t) in spec.tokens.iter().enumerate() {
            ids.insert(t.clone(), i as u32);
        }

        let mut merges: HashMap<String, HashMap<String, u32>> = HashMap::new();
        for (rank, m) in spec.merges.iter().enumerate() {
            // The separator is the first space after the first byte, as llama.cpp splits.
            let split = m
                .bytes()
                .skip(1)
                .position(|b| b == b' ')
                .map(|p| p + 1)
                .ok_or_else(|| TokenizerError::BadMerge {
                    index: rank,
                    text: m.clone(),
                })?;
            let (left, right) = (&m[..split], &m[split + 1..]);
            // The first occurrence keeps its (higher) priority.
            merges
                .entry(left.to_string())
                .or_default()
                .entry(right.to_string())
                .or_insert(rank as u32);
        }

        let mut special: Vec<u32> = (0..n as u32)
            .filter(|&i| types[i as usize].is_special() && !spec.tokens[i as usize].is_empty())
            .collect();
        special.sort_by(|&a, &b| {
            spec.tokens[b as usize]
                .len()
                .cmp(&spec.tokens[a as usize].len())
        });

        let byte_chars = byte_chars();
        let mut byte_tokens = vec![None; 256];
        if spec.model == Model::Spm {
            for (b, slot) in byte_tokens.iter_mut().enumerate() {
                *slot = ids.get(&format!("<0x{b:02X}>")).copied().or_else(|| {
                    std::str::from_utf8(&[b as u8])
                        .ok()
                        .and_then(|s| ids.get(s).copied())
                });
            }
        }

        let pieces = spec
            .tokens
            .iter()
            .zip(&types)
            .map(|(text, &ty)| piece_of(spec.model, text, ty, &byte_chars))
            .collect();

        let find = |text: &str| ids.get(text).copied();
        let eot = spec.eot.or_else(|| EOT_TEXTS.iter().find_map(|t| find(t)));
        let eom = spec.eom.or_else(|| find("<|eom_id|>"));

        Ok(Tokenizer {
            model: spec.model,
            pre: spec.pre,
            tokens: spec.tokens,
            scores,
            types,
            ids,
            merges,
            special,
            pieces,
            byte_tokens,
            byte_chars,
            bos: spec.bos,
            eos: spec.eos,
            unk: spec.unk,
            eot,
            eom,
            add_bos: spec.add_bos,
            add_space_prefix: spec.add_space_prefix && spec.model == Model::Spm,
            ignore_merges: spec.ignore_merges,
            letter: Regex::new(r"\p{L}+")?,
            number: Regex::new(r"\p{N}+")?,
        })
    }

    pub fn model(&self) -> Model {
        self.model
    }

    pub fn pre_tokenizer(&self) -> PreTokenizer {
        self.pre
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    pub fn unk(&self) -> Option<u32> {
        self.unk
    }

    /// Whether the model asks for a BOS at the start of a prompt (`add_bos_token`).
    pub fn wants_bos(&self) -> bool {
        self.add_bos && self.bos.is_some()
    }

    /// End of generation: EOS, end of turn or end of message.
    pub fn is_eog(&self, id: u32) -> bool {
        [self.eos, self.eot, self.eom].contains(&Some(id))
    }

    /// The vocabulary entry's text (`tokenizer.ggml.tokens`).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.types.get(id as usize).copied()
    }

    pub fn score(&self, id: u32) -> Option<f32> {
        self.scores.get(id as usize).copied()
    }

    /// The id of a vocabulary entry's exact text.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    /// Tokenize `text`; control tokens are never produced from it. `add_bos` puts the BOS
    /// first (when the vocabulary has one); pass [`Tokenizer::wants_bos`] to do what the model
    /// file asks.
    pub fn encode(&self, text: &str, add_bos: bool) -> Vec<u32> {
        self.encode_with(text, add_bos, false)
    }

    /// As [`Tokenizer::encode`]; with `parse_special`, control tokens written in the text
    /// (`<|begin_of_text|>`, `<s>`) become their ids, as llama.cpp's `parse_special`.
    pub fn encode_with(&self, text: &str, add_bos: bool, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::new();
        if add_bos {
            out.extend(self.bos);
        }
        let fragments = self.partition(text, parse_special);
        match self.model {
            Model::Spm => {
                // llama.cpp prefixes a space to the text and to any text after a special token.
                let mut prev_special = true;
                for f in fragments {
                    match f {
                        Fragment::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                        Fragment::Text(t) => {
                            let mut s = String::with_capacity(t.len() + 3);
                            if self.add_space_prefix && prev_special {
                                s.push(' ');
                            }
                            s.push_str(t);
                            self.spm_text(&s.replace(' ', SPACE_MARK), &mut out);
                            prev_special = false;
                        }
                    }
                }
            }
            Model::Bpe => {
                for f in fragments {
                    match f {
                        Fragment::Token(id) => out.push(id),
                        Fragment::Text(t) => {
                            for word in self.pre_split(t) {
                                let mapped: String =
                                    word.bytes().map(|b| self.byte_chars[b as usize]).collect();
                                self.bpe_word(&mapped, &mut out);
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// What `id` prints as: control, unknown and unused tokens print nothing, byte tokens their
    /// byte, SentencePiece pieces with U+2581 as a space. May be part of a UTF-8 character.
    pub fn piece(&self, id: u32) -> &[u8] {
        self.pieces.get(id as usize).map_or(&[], Vec::as_slice)
    }

    /// The text of `ids` (invalid UTF-8 becomes U+FFFD). For SentencePiece vocabularies the
    /// space the encoder prefixed is removed and U+2581 reached through byte tokens also
    /// prints as a space, so `decode(encode(t))` is `t` for text without U+2581.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut d = StreamDecoder::new(self);
        let mut s = String::new();
        for &id in ids {
            s.push_str(&d.push(self, id));
        }
        s.push_str(&d.finish());
        s
    }

    /// Split `text` on special tokens (longest first), as llama.cpp's partition.
    fn partition<'a>(&self, text: &'a str, parse_special: bool) -> Vec<Fragment<'a>> {
        let mut frags = Vec::new();
        if text.is_empty() {
            return frags;
        }
        frags.push(Fragment::Text(text));
        for &id in &self.special {
            let ty = self.types[id as usize];
            if !parse_special && matches!(ty, TokenType::Control | TokenType::Unknown) {
                continue;
            }
            let needle = self.tokens[id as usize].as_str();
            let mut next = Vec::with_capacity(frags.len());
            for f in frags {
                match f {
                    Fragment::Text(t) if t.contains(needle) => {
                        let mut rest = t;
                        while let Some(p) = rest.find(needle) {
                            if p > 0 {
                                next.push(Fragment::Text(&rest[..p]));
                            }
                            next.push(Fragment::Token(id));
                            rest = &rest[p + needle.len()..];
                        }
                        if !rest.is_empty() {
                            next.push(Fragment::Text(rest));
                        }
                    }
                    other => next.push(other),
                }
            }
            frags = next;
        }
        frags
    }

    /// Score-ordered merging over the whole (escaped) text, then byte fallback.
    fn spm_text(&self, text: &str, out: &mut Vec<u32>) {
        let mut syms = char_symbols(text);
        merge_symbols(&mut syms, |syms, l, r| {
            let merged = &text[syms[l].start..syms[r].start + syms[r].len];
            self.ids.get(merged).map(|&id| Pair {
                // Highest score first: the heap is a max-heap on `key`.
                key: Key::Score(self.scores[id as usize]),
                left: l,
                right: r,
                len: merged.len(),
            })
        });
        let mut at = (!syms.is_empty()).then_some(0);
        while let Some(i) = at {
            let s = &text[syms[i].start..syms[i].start + syms[i].len];
            match self.ids.get(s) {
                Some(&id) => out.push(id),
                None => {
                    for b in s.bytes() {
                        out.extend(self.byte_tokens[b as usize].or(self.unk));
                    }
                }
            }
            at = syms[i].next;
        }
    }

    /// Rank-ordered merging within one byte-mapped pre-token.
    fn bpe_word(&self, word: &str, out: &mut Vec<u32>) {
        if self.ignore_merges {
            if let Some(&id) = self.ids.get(word) {
                out.push(id);
                return;
            }
        }
        let mut syms = char_symbols(word);
        merge_symbols(&mut syms, |syms, l, r| {
            let left = &word[syms[l].start..syms[l].start + syms[l].len];
            let right = &word[syms[r].start..syms[r].start + syms[r].len];
            let rank = *self.merges.get(left)?.get(right)?;
            Some(Pair {
                key: Key::Rank(rank),
                left: l,
                right: r,
                len: left.len() + right.len(),
            })
        });
        let mut at = (!syms.is_empty()).then_some(0);
        while let Some(i) = at {
            let s = &word[syms[i].start..syms[i].start + syms[i].len];
            match self.ids.get(s) {
                Some(&id) => out.push(id),
                None => {
                    // Only reachable with a vocabulary lacking some byte characters.
                    for (k, c) in s.char_indices() {
                        out.extend(self.ids.get(&s[k..k + c.len_utf8()]).copied().or(self.unk));
                    }
                }
            }
            at = syms[i].next;
        }
    }

    /// Pre-tokens of `text` for byte-level BPE.
    fn pre_split<'a>(&self, text: &'a str) -> Vec<&'a str> {
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let mut class = vec![Class::default(); chars.len()];
        let index_of = |byte: usize| chars.partition_point(|&(o, _)| o < byte);
        for (re, is_letter) in [(&self.letter, true), (&self.number, false)] {
            for m in re.find_iter(text) {
                for c in &mut class[index_of(m.start())..index_of(m.end())] {
                    if is_letter {
                        c.letter = true;
                    } else {
                        c.number = true;
                    }
                }
            }
        }
        for (c, &(_, ch)) in class.iter_mut().zip(&chars) {
            c.space = ch.is_whitespace();
        }
        let bounds = match self.pre {
            PreTokenizer::Llama3 => split_llama3(&chars, &class),
            PreTokenizer::Gpt2 => split_gpt2(&chars, &class),
        };
        let offset = |i: usize| chars.get(i).map_or(text.len(), |&(o, _)| o);
        let mut words = Vec::with_capacity(bounds.len());
        let mut start = 0;
        for end in bounds {
            words.push(&text[offset(start)..offset(end)]);
            start = end;
        }
        words
    }
}

/// Turns token ids into text as they arrive, holding back incomplete UTF-8 characters.
#[derive(Debug, Clone)]
pub struct StreamDecoder {
    pending: Vec<u8>,
    /// SentencePiece: the leading prefix space is still to be removed.
    strip_space: bool,
    spm: bool,
}

impl StreamDecoder {
    pub fn new(tok: &Tokenizer) -> StreamDecoder {
        StreamDecoder {
            pending: Vec::new(),
            strip_space: tok.add_space_prefix,
            spm: tok.model == Model::Spm,
        }
    }

    /// The text that `id` completes (possibly empty).
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> String {
        self.pending.extend_from_slice(tok.piece(id));
        let mut s = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(v) => {
                    s.push_str(v);
                    self.pending.clear();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // The prefix is valid UTF-8 by the error's own report.
                    s.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match e.error_len() {
                        // Incomplete character at the end: wait for more bytes.
                        None => {
                            self.pending.drain(..valid);
                            break;
                        }
                        Some(bad) => {
                            s.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
        self.finish_text(s)
    }

    /// Whatever is still held back (an incomplete character becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        self.finish_text(s)
    }

    fn finish_text(&mut self, s: String) -> String {
        if s.is_empty() {
            return s;
        }
        let mut s = if self.spm {
            s.replace(SPACE_MARK, " ")
        } else {
            s
        };
        if self.strip_space {
            self.strip_space = false;
            if s.starts_with(' ') {
                s.remove(0);
            }
        }
        s
    }
}

/// A run of text in a merge list (`len` 0 once merged into its left neighbour).
#[derive(Debug, Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

fn char_symbols(text: &str) -> Vec<Symbol> {
    let n = text.chars().count();
    text.char_indices()
        .enumerate()
        .map(|(i, (start, c))| Symbol {
            start,
            len: c.len_utf8(),
            prev: i.checked_sub(1),
            next: (i + 1 < n).then_some(i + 1),
        })
        .collect()
}

/// Merge `p.right` into `p.left` if the pair is still current; whether it was.
/// Apply the best proposed merge of neighbours until none is left; `propose` says whether two
/// neighbouring symbols merge and with what priority (SPM: score, BPE: rank).
fn merge_symbols(syms: &mut [Symbol], propose: impl Fn(&[Symbol], usize, usize) -> Option<Pair>) {
    let mut heap = BinaryHeap::new();
    let push =
        |heap: &mut BinaryHeap<Pair>, syms: &[Symbol], l: Option<usize>, r: Option<usize>| {
            if let (Some(l), Some(r)) = (l, r) {
                heap.extend(propose(syms, l, r));
            }
        };
    for i in 1..syms.len() {
        push(&mut heap, syms, Some(i - 1), Some(i));
    }
    while let Some(p) = heap.pop() {
        if !merge(syms, &p) {
            continue;
        }
        push(&mut heap, syms, syms[p.left].prev, Some(p.left));
        push(&mut heap, syms, Some(p.left), syms[p.left].next);
    }
}

fn merge(syms: &mut [Symbol], p: &Pair) -> bool {
    let (l, r) = (syms[p.left], syms[p.right]);
    // Symbols only grow, so an unchanged total length means an unchanged pair.
    if l.len == 0 || r.len == 0 || l.len + r.len != p.len {
        return false;
    }
    syms[p.left].len += r.len;
    syms[p.right].len = 0;
    syms[p.left].next = r.next;
    if let Some(n) = r.next {
        syms[n].prev = Some(p.left);
    }
    true
}

#[derive(Debug, Clone, Copy)]
enum Key {
    Score(f32),
    Rank(u32),
}

/// A candidate merge; the heap's greatest is the next to apply.
#[derive(Debug, Clone, Copy)]
struct Pair {
    key: Key,
    left: usize,
    right: usize,
    len: usize,
}

impl Ord for Pair {
    fn cmp(&self, o: &Pair) -> Ordering {
        let by_key = match (self.key, o.key) {
            (Key::Score(a), Key::Score(b)) => a.total_cmp(&b),
            (Key::Rank(a), Key::Rank(b)) => b.cmp(&a),
            (Key::Score(_), Key::Rank(_)) => Ordering::Greater,
            (Key::Rank(_), Key::Score(_)) => Ordering::Less,
        };
        // Ties: the leftmost pair first.
        by_key.then(o.left.cmp(&self.left))
    }
}

impl PartialOrd for Pair {
    fn partial_cmp(&self, o: &Pair) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl PartialEq for Pair {
    fn eq(&self, o: &Pair) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}

impl Eq for Pair {}

/// GPT-2's byte -> printable character table (printable Latin-1 bytes map to themselves).
fn byte_chars() -> [char; 256] {
    let mut t = ['\0'; 256];
    let mut extra = 0u32;
    for (b, slot) in t.iter_mut().enumerate() {
        let keep = matches!(b, 33..=126 | 161..=172 | 174..=255);
        let cp = if keep {
            b as u32
        } else {
            extra += 1;
            255 + extra
        };
        *slot = char::from_u32(cp).unwrap_or(char::REPLACEMENT_CHARACTER);
    }
    t
}

fn piece_of(model: Model, text: &str, ty: TokenType, byte_chars: &[char; 256]) -> Vec<u8> {
    match (model, ty) {
        (_, TokenType::UserDefined) => text.as_bytes().to_vec(),
        (Model::Spm, TokenType::Normal) => text.replace(SPACE_MARK, " ").into_bytes(),
        (Model::Spm, TokenType::Byte) => text
            .strip_prefix("<0x")
            .and_then(|h| h.strip_suffix('>'))
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .map_or_else(|| text.as_bytes().to_vec(), |b| vec![b]),
        (Model::Bpe, TokenType::Normal) => {
            let mut out = Vec::with_capacity(text.len());
            for c in text.chars() {
                match byte_chars.iter().position(|&x| x == c) {
                    Some(b) => out.push(b as u8),
                    // Not a byte-level character: print it as it is.
                    None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                }
            }
            out
        }
        _ => Vec::new(),
    }
}

/// Word end positions (char indices) for Llama 3's pattern (contractions ASCII case-insensitive):
/// `'s|'t|'re|'ve|'m|'ll|'d|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*`
/// `|\s*[\r\n]+|\s+(?!\S)|\s+`
fn split_llama3(chars: &[(usize, char)], class: &[Class]) -> Vec<usize> {
    let n = chars.len();
    let ch = |i: usize| chars.get(i).map(|&(_, c)| c);
    let cls = |i: usize| class.get(i).copied().unwrap_or_default();
    let newline = |i: usize| matches!(ch(i), Some('\r' | '\n'));
    let mut ends = Vec::new();
    let mut pos = 0;
    while pos < n {
        let c = ch(pos).unwrap_or_default();
        let f = cls(pos);
        if c == '\'' {
            let lower = |i| ch(i).map(|c: char| c.to_ascii_lowercase());
            let len = match (lower(pos + 1), lower(pos + 2)) {
                (Some('s' | 't' | 'm' | 'd'), _) => 2,
                (Some('r' | 'v'), Some('e')) | (Some('l'), Some('l')) => 3,
                _ => 0,
            };
            if len > 0 {
                pos += len;
                ends.push(pos);
                continue;
            }
        }
        if !(newline(pos) || f.number) && (f.letter || cls(pos + 1).letter) {
            pos += 1;
            while pos < n && cls(pos).letter {
                pos += 1;
            }
            ends.push(pos);
            continue;
        }
        if f.number {
            let start = pos;
            while pos < n && pos - start < 3 && cls(pos).number {
                pos += 1;
            }
            ends.push(pos);
            continue;
        }
        let p = if c == ' ' { pos + 1 } else { pos };
        if p < n && cls(p).other() {
            pos = p;
            while pos < n && cls(pos).other() {
                pos += 1;
            }
            while newline(pos) {
                pos += 1;
            }
            ends.push(pos);
            continue;
        }
        pos = whitespace_end(pos, n, &cls, Some(&newline));
        ends.push(pos);
    }
    ends
}

/// Word end positions for GPT-2's pattern:
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
fn split_gpt2(chars: &[(usize, char)], class: &[Class]) -> Vec<usize> {
    let n = chars.len();
    let ch = |i: usize| chars.get(i).map(|&(_, c)| c);
    let cls = |i: usize| class.get(i).copied().unwrap_or_default();
    let mut ends = Vec::new();
    let mut pos = 0;
    while pos < n {
        let c = ch(pos).unwrap_or_default();
        if c == '\'' {
            let len = match (ch(pos + 1), ch(pos + 2)) {
                (Some('s' | 't' | 'm' | 'd'), _) => 2,
                (Some('r' | 'v'), Some('e')) | (Some('l'), Some('l')) => 3,
                _ => 0,
            };
            if len > 0 {
                pos += len;
                ends.push(pos);
                continue;
            }
        }
        let p = if c == ' ' { pos + 1 } else { pos };
        let run: Option<fn(Class) -> bool> = match cls(p) {
            _ if p >= n => None,
            k if k.letter => Some(|k| k.letter),
            k if k.number => Some(|k| k.number),
            k if k.other() => Some(Class::other),
            _ => None,
        };
        if let Some(run) = run {
            pos = p;
            while pos < n && run(cls(pos)) {
                pos += 1;
            }
            ends.push(pos);
            continue;
        }
        pos = whitespace_end(pos, n, &cls, None);
        ends.push(pos);
    }
    ends
}

/// End of the whitespace word at `pos`: through the last newline of the run when `newline` is
/// given (`\s*[\r\n]+`), else the run less its last character when text follows
/// (`\s+(?!\S)`), else the whole run (`\s+`); at least one character.
fn whitespace_end(
    pos: usize,
    n: usize,
    cls: &dyn Fn(usize) -> Class,
    newline: Option<&dyn Fn(usize) -> bool>,
) -> usize {
    let mut end = pos;
    let mut last_newline = None;
    while end < n && cls(end).space {
        if newline.is_some_and(|nl| nl(end)) {
            last_newline = Some(end + 1);
        }
        end += 1;
    }
    if let Some(e) = last_newline {
        return e;
    }
    let run = end - pos;
    if run > 1 && end < n {
        end - 1
    } else {
        end.max(pos + 1)
    }
}

fn str_key<'a>(g: &'a Gguf, key: &'static str) -> Result<Option<&'a str>, TokenizerError> {
    match g.get(key) {
        None => Ok(None),
        Some(v) => v.as_str().map(Some).ok_or(TokenizerError::WrongType {
            key,
            want: "string",
        }),
    }
}

fn array_key<'a>(g: &'a Gguf, key: &'static str) -> Result<Option<&'a [Value]>, TokenizerError> {
    match g.get(key) {
        None => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(_) => Err(TokenizerError::WrongType { key, want: "array" }),
    }
}

fn bool_key(g: &Gguf, key: &'static str) -> Result<Option<bool>, TokenizerError> {
    match g.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(TokenizerError::WrongType { key, want: "bool" }),
    }
}
