"""Our tokenizers as Hugging Face tokenizer.json documents (`lmcore export RUN --to hf`), built with the `tokenizers`
library so that `transformers` gives every text our ids and decodes them to our text:

- character: a BPE without merges, every character a token, <unk> for the others;
- word: a WordLevel model with our vocabulary, behind a normalizer and pre-tokenizer that cut text as ours does (at
  Python's whitespace, each line break an <eos>, lower case when ours lowercases); jieba's segmentation has no
  equivalent there and is refused;
- SentencePiece: its pieces as a BPE (merges rebuilt from the pieces, ranked by score) or a Unigram model (the
  pieces' log-probabilities), byte fallback on. A piece's "▁" is written as the space it stands for, so the text
  needs no normalizer and a literal "▁" falls back to its bytes, as ours encodes it;
- imported (Hugging Face): as it came.
"""
from __future__ import annotations

from ..errors import InteropError
from ..tokenizers import (EOS, UNK, CharTokenizer, HuggingFaceTokenizer, SentencePieceTokenizer, Tokenizer,
                          WordTokenizer, tokenizers_library)

SPM_SPACE = "\u2581"  # how SentencePiece writes a space inside a piece


def hf_tokenizer_document(tokenizer: Tokenizer) -> str:
    """`tokenizer` as a Hugging Face tokenizer.json; InteropError for one that has no equivalent there."""
    if isinstance(tokenizer, HuggingFaceTokenizer):
        return tokenizer.document
    if tokenizer.special_tokens:
        raise InteropError(f"this run's {tokenizer.kind} tokenizer has the special tokens of an encoder "
                           f"({', '.join(tokenizer.special_tokens)}), which a GPT-2 tokenizer does not; use --to onnx "
                           "or --to safetensors.")
    if isinstance(tokenizer, CharTokenizer):
        hf = char_tokenizer(tokenizer)
    elif isinstance(tokenizer, WordTokenizer):
        hf = word_tokenizer(tokenizer)
    elif isinstance(tokenizer, SentencePieceTokenizer):
        hf = sentencepiece_tokenizer(tokenizer)
    else:
        raise InteropError(f"this run's {tokenizer.kind} tokenizer has no Hugging Face equivalent here; use --to onnx "
                           "or --to safetensors, which keep the tokenizer in LM Workbench's format.")
    return hf.to_str()


def hf_special_tokens(document: str, ids: dict[str, int | None]) -> dict[str, str]:
    """tokenizer_config.json's special tokens ({"eos_token": id} -> {"eos_token": "<|endoftext|>"}): those of `ids`
    that `document` holds as added tokens. transformers cuts a token named there out of any text, as the added ones
    are; ours read a literal "<unk>" or "<eos>" inside a word as part of that word, so they are not named."""
    added = tokenizers_library().Tokenizer.from_str(document).get_added_tokens_decoder()
    return {key: added[i].content for key, i in ids.items() if i in added}


def char_tokenizer(tokenizer: CharTokenizer):
    tokenizers = tokenizers_library()
    vocab = {tokenizer.token_text(i): i for i in range(tokenizer.vocab_size)}
    hf = tokenizers.Tokenizer(tokenizers.models.BPE(vocab=vocab, merges=[], unk_token=tokenizer.token_text(0)))
    hf.decoder = tokenizers.decoders.Fuse()
    return hf


def word_tokenizer(tokenizer: WordTokenizer):
    if tokenizer.segmenter != "whitespace":
        raise InteropError(f"this run's word tokenizer cuts words with {tokenizer.segmenter} "
                           f"(tokenizer.segmenter = {tokenizer.segmenter!r}), which a Hugging Face tokenizer.json "
                           "cannot express; use --to onnx or --to safetensors, or train the run with "
                           "tokenizer.kind = 'sentencepiece' to export it to Hugging Face.")
    tokenizers = tokenizers_library()
    Regex, decoders, normalizers = tokenizers.Regex, tokenizers.decoders, tokenizers.normalizers
    # token_text writes <eos> as the line break it stands for
    vocab = {EOS if i == tokenizer.eos_id else tokenizer.token_text(i): i for i in range(tokenizer.vocab_size)}
    hf = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab=vocab, unk_token=UNK))
    # Ours splits lines at "\n" (an <eos> between them) and each line at what str.split() takes for whitespace,
    # which is not quite the Unicode White_Space that the library's WhitespaceSplit uses.
    lowercase = [normalizers.Lowercase()] if tokenizer.lowercase else []
    hf.normalizer = normalizers.Sequence([*lowercase, normalizers.Replace("\n", f" {EOS} ")])
    hf.pre_tokenizer = tokenizers.pre_tokenizers.Split(Regex(f"[{python_whitespace()}]+"), behavior="removed")
    # Decoded as ours: words between single spaces, an <eos> a line break with no space either side. WordPiece's
    # decoder puts a space before every token but the first (none starts with its "prefix", a space).
    hf.decoder = decoders.Sequence([decoders.Replace(Regex(f"^{EOS}$"), "\n"),
                                    decoders.WordPiece(prefix=" ", cleanup=False), decoders.Fuse(),
                                    decoders.Replace(Regex(" ?\n ?"), "\n")])
    return hf


def python_whitespace() -> str:
    """Every character str.split() splits at, as an Oniguruma character class's contents."""
    return "".join(f"\\x{{{ord(c):x}}}" for c in map(chr, range(0x110000)) if c.isspace())


def sentencepiece_tokenizer(tokenizer: SentencePieceTokenizer):
    tokenizers = tokenizers_library()
    model_type, pieces = sentencepiece_pieces(tokenizer.model)
    # Our pieces are <unk>, the 256 byte pieces and the learned ones; the library's byte fallback and unknown token
    # find the first two by their names.
    vocab = [(piece.replace(SPM_SPACE, " ") if kind == "NORMAL" else piece, score) for piece, score, kind in pieces]
    if model_type == "BPE":
        ids = {piece: i for i, (piece, _) in enumerate(vocab)}
        learned = sorted((i for i, (_, _, kind) in enumerate(pieces) if kind == "NORMAL"), key=lambda i: -vocab[i][1])
        # SentencePiece merges whichever two neighbours make the piece of highest score: every way of cutting a
        # piece in two known pieces is a merge, ranked by that score.
        merges = [(piece[:cut], piece[cut:]) for piece in (vocab[i][0] for i in learned) for cut in range(1, len(piece))
                  if piece[:cut] in ids and piece[cut:] in ids]
        model = tokenizers.models.BPE(vocab=ids, merges=merges, unk_token=UNK, byte_fallback=True)
    elif model_type == "UNIGRAM":
        # SentencePiece never finds its reserved pieces (<unk>, <0x41>...) in text, but the library would: their
        # score, 0, is the highest. Below that of any spelling in single characters, they lose to it.
        reserved = [i for i, (_, _, kind) in enumerate(pieces) if kind != "NORMAL"]
        lowest = min(score for _, score, kind in pieces if kind == "NORMAL")
        floor = max(len(vocab[i][0]) for i in reserved) * lowest - 1.0
        model = tokenizers.models.Unigram([(piece, floor if i in reserved else score)
                                           for i, (piece, score) in enumerate(vocab)],
                                          unk_id=tokenizer.unk_id, byte_fallback=True)
    else:
        raise InteropError(f"this run's SentencePiece tokenizer is a {model_type.lower()} model; BPE and unigram ones "
                           "export to Hugging Face. Use --to onnx or --to safetensors.")
    hf = tokenizers.Tokenizer(model)
    decoders = tokenizers.decoders
    hf.decoder = decoders.Sequence([decoders.Replace(tokenizers.Regex(f"^{UNK}$"), "\ufffd"),  # as ours decodes it
                                    decoders.ByteFallback(), decoders.Fuse()])
    return hf


def sentencepiece_pieces(model: bytes) -> tuple[str, list[tuple[str, float, str]]]:
    """The model's type ("BPE", "UNIGRAM"...) and its pieces as (piece, score, type name), in id order, read from
    the model file with protobuf."""
    try:
        from sentencepiece import sentencepiece_model_pb2
    except ImportError as exc:
        raise InteropError(f"exporting a SentencePiece tokenizer to Hugging Face reads its model with protobuf "
                           f"({exc.name} is missing): pip install 'lm-workbench[hf]'.") from None
    proto = sentencepiece_model_pb2.ModelProto()  # type: ignore[attr-defined]  # made by protobuf on import
    proto.ParseFromString(model)
    piece_type = proto.SentencePiece.Type.Name
    return (proto.trainer_spec.ModelType.Name(proto.trainer_spec.model_type),
            [(p.piece, p.score, piece_type(p.type)) for p in proto.pieces])
