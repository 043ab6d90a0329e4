#!/usr/bin/env python3
"""Train two small tokenizers with independent implementations and record their encodings.

- bpe.json: a byte-level BPE trained with Hugging Face `tokenizers` (0.23) on local text, with
  Llama 3's pre-tokenizer (Split on its regex, then ByteLevel without regex) and ignore_merges, as
  llama.cpp's `llama-bpe`. `cases_llama3` are its encodings; `cases_gpt2` re-encode the same
  strings with the same vocabulary and merges under GPT-2's ByteLevel pre-tokenizer (no
  ignore_merges); `cases_special` parse the added special tokens written in the text.
- spm.json: a SentencePiece (0.2) BPE model with byte fallback, identity normalisation, no
  whitespace collapsing and the dummy space prefix (Llama 2's settings), and its encodings.

Run from the repository root: python3 datasets/golden/tokenizer/make_tokenizer_golden.py
(pip install tokenizers sentencepiece). Training text: README.md, datasets/golden/README.upstream.md
and the EXTRA lines below.
"""
import json
import os
import tempfile

import sentencepiece as spm
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

OUT = os.path.dirname(os.path.abspath(__file__))
LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
          r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
EXTRA = [
    "Der Führer des Zuges hat über die Brücke gesprochen, schöne Grüße aus München.",
    "нещо на Български език и още малко текст на кирилица",
    "日本語のテキストと中文的文本混在しています。",
    "Ternary weights are -1, 0 or +1; that's why they're cheap. We'll see, won't we? I'd say so.",
    "numbers: 1 12 123 1234 12345 2560x6912 3.14159 0.001 1,000,000",
]
TEXTS = [
    "Hello world",
    " Hello world",
    "Hello World!",
    "  two leading spaces",
    "trailing spaces   ",
    "   ",
    "\n",
    "tabs\tand\t\ttabs",
    "new\nlines\n\n\nmany\n",
    "windows\r\nline\r\nends",
    "  \n  \n x",
    "numbers 1234567 and 3.14159 and 0012",
    "I'm sure you're right, it's what we've said; they'll know, he'd go. DON'T SHOUT",
    "'s alone, 'S upper, ' quote",
    "Führer über Brücke",
    "нещо на Български",
    "日本語のテキスト",
    "emoji 🦙🚀 and 😶‍🌫️ joined",
    "mixed: a1b2c3 x86_64 ARMv8.2",
    "punctuation!!! ??? ... --- (parens) [brackets] {braces}",
    'code: fn main() { println!("hi {}", x); }',
    "non-breaking\u00a0space and ideographic\u3000space",
    "combining e\u0301 and precomposed \u00e9",
    "हिन्दी में लिखा गया",
    "\u01c5 titlecase and \u216b roman twelve and \u00bd half",
    "The quick brown fox jumps over the lazy dog.",
    "ternary kernels tq1_0 tq2_0 i2_s tl1 tl2",
    "a",
    "",
    "x" * 40 + " " + "ab" * 15,
]
SPECIAL_TEXTS = [
    "<|begin_of_text|>Hello<|eot_id|>",
    "before <|end_of_text|> after",
    "<|eot_id|><|eot_id|>  spaced",
]


def corpus():
    lines = []
    for path in ["README.md", "datasets/golden/README.upstream.md"]:
        with open(path, encoding="utf-8") as f:
            lines += [l.rstrip("\n") for l in f if l.strip()]
    return lines + EXTRA


def bpe(lines):
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1200, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=SPECIAL, show_progress=False)
    tok.train_from_iterator(lines, trainer)
    model = json.loads(tok.to_str())["model"]
    vocab = model["vocab"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    tokens = [None] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    gpt2 = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges],
                                ignore_merges=False))
    gpt2.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    gpt2.add_special_tokens(SPECIAL)
    return {
        "source": "huggingface tokenizers %s BpeTrainer, see make_tokenizer_golden.py" % __import__("tokenizers").__version__,
        "tokens": tokens,
        "types": [3 if t in SPECIAL else 1 for t in tokens],
        "merges": merges,
        "bos": vocab["<|begin_of_text|>"],
        "eos": vocab["<|end_of_text|>"],
        "cases_llama3": [{"text": t, "ids": tok.encode(t, add_special_tokens=False).ids} for t in TEXTS],
        "cases_gpt2": [{"text": t, "ids": gpt2.encode(t, add_special_tokens=False).ids} for t in TEXTS],
        "cases_special": [{"text": t, "ids": tok.encode(t, add_special_tokens=False).ids} for t in SPECIAL_TEXTS],
    }


def sentencepiece(lines):
    with tempfile.TemporaryDirectory() as d:
        prefix = os.path.join(d, "m")
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_prefix=prefix, model_type="bpe", vocab_size=900,
            byte_fallback=True, normalization_rule_name="identity", remove_extra_whitespaces=False,
            add_dummy_prefix=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2)
        sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    n = sp.get_piece_size()

    def kind(i):
        if sp.is_unknown(i):
            return 2
        if sp.is_control(i):
            return 3
        if sp.is_unused(i):
            return 5
        if sp.is_byte(i):
            return 6
        return 1

    return {
        "source": "sentencepiece %s, model_type=bpe, see make_tokenizer_golden.py" % spm.__version__,
        "tokens": [sp.id_to_piece(i) for i in range(n)],
        "scores": [sp.get_score(i) for i in range(n)],
        "types": [kind(i) for i in range(n)],
        "bos": sp.bos_id(),
        "eos": sp.eos_id(),
        "unk": sp.unk_id(),
        "cases": [{"text": t, "ids": sp.encode(t)} for t in TEXTS],
    }


def main():
    lines = corpus()
    for name, data in [("bpe.json", bpe(lines)), ("spm.json", sentencepiece(lines))]:
        with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, separators=(",", ":"))
            f.write("\n")


if __name__ == "__main__":
    main()
