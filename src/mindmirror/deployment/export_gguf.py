"""A causal Llama-architecture student as one GGUF file for llama.cpp (and Ollama).

It follows llama.cpp's own converter (``convert_hf_to_gguf.py``, ``LlamaModel`` and
``_set_vocab_gpt2``) and writes with the ``gguf`` package's ``GGUFWriter``:

- tensors: Hugging Face names map to GGUF names through ``gguf``'s tensor map for the llama
  architecture; the q and k projections are permuted back from the rotate-half layout of
  transformers to the interleaved rotary layout llama.cpp computes with; a tied output head is
  left out (llama.cpp reuses ``token_embd``); 1-D tensors (norms) stay f32;
- hyper-parameters: blocks, widths, heads, key/value heads, head size, RMS epsilon, rope base
  (and linear rope scaling); other rope scalings are refused rather than written wrong;
- tokenizer: byte-level BPE (``tokenizer.ggml.model = gpt2``) with every token, its type
  (control for special added tokens, user-defined for other added tokens), the merges, the
  bos/eos/unk/pad ids, whether the tokenizer adds bos/eos (measured on the tokenizer itself,
  so llama.cpp tokenizes prompts exactly as training did), and the pre-tokenizer read from
  the tokenizer's own pre-tokenizer (``gpt-2``, ``smollm``, ``llama-bpe``);
- a chat template carrying the student's prompt format: a user message that starts with a
  task prefix (``predict:``, ``explain:``, ``verdict:``, ``critique:``) is sent as it is, any
  other text as ``explain: <text>``, each followed by the separator the student learnt.

Types: ``f32``, ``f16`` (default) and ``q8_0`` are written directly (``gguf.quants`` for Q8_0,
f16 for rows it cannot split into blocks); the other llama.cpp types (``q4_k_m``, ``q5_k_m``,
``q4_0``, ...) quantize the f16 file with llama.cpp's own quantizer (``llama-cpp-python``).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mindmirror.errors import UserError
from mindmirror.student.formats import CAUSAL_SEPARATOR, EXPLAIN, PREFIXES

DIRECT_TYPES = ("f32", "f16", "q8_0")
LLAMA_CPP_TYPES = (
    "q4_0",
    "q4_1",
    "q5_0",
    "q5_1",
    "q2_k",
    "q3_k_s",
    "q3_k_m",
    "q3_k_l",
    "q4_k_s",
    "q4_k_m",
    "q5_k_s",
    "q5_k_m",
    "q6_k",
)
QUANT_TYPES = DIRECT_TYPES + LLAMA_CPP_TYPES
# The llama.cpp regex of each supported pre-tokenizer, told apart by the tokenizer's own
# pre-tokenizer (tokenizer.json), so llama.cpp splits text exactly as the student's tokenizer.
LLAMA3_SPLIT = (
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
)


def quant_type(name: str) -> str:
    """The normalised type name (``Q4_K_M`` -> ``q4_k_m``); UserError listing the choices."""
    lowered = name.strip().lower()
    if lowered not in QUANT_TYPES:
        raise UserError(f"--quant {name}: unknown GGUF type; choose from {', '.join(QUANT_TYPES)}")
    return lowered


def chat_template() -> str:
    """A Jinja chat template that renders the last user message in the student's format."""
    starts = " or ".join(f"text.startswith('{prefix}:')" for prefix in PREFIXES)
    separator = json.dumps(CAUSAL_SEPARATOR)
    return (
        "{% set text = (messages | selectattr('role', 'equalto', 'user') | list)[-1]"
        "['content'] | trim %}"
        f"{{% if {starts} %}}{{{{ text }}}}{{% else %}}{EXPLAIN}: {{{{ text }}}}{{% endif %}}"
        f"{{{{ {separator} }}}}"
    )


def _pre_tokenizer(tokenizer_json: dict[str, Any]) -> str:
    """llama.cpp's name for the tokenizer's pre-tokenizer; UserError for one it lacks."""
    pre = tokenizer_json.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = [step.get("type") for step in steps]
    byte_level = steps[-1] if kinds and kinds[-1] == "ByteLevel" else None
    if byte_level is not None and kinds == ["ByteLevel"] and byte_level.get("use_regex", True):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits"):
        return "smollm"
    if kinds == ["Split", "ByteLevel"]:
        pattern = (steps[0].get("pattern") or {}).get("Regex")
        if pattern == LLAMA3_SPLIT and not steps[1].get("use_regex", True):
            return "llama-bpe"
    raise UserError(
        f"the student's pre-tokenizer ({' + '.join(map(str, kinds)) or 'none'}) has no "
        "llama.cpp equivalent here (gpt-2, smollm, llama-bpe): export --format hf and convert "
        "with llama.cpp's convert_hf_to_gguf.py"
    )


def _adds(tokenizer: Any, token_id: int | None, first: bool) -> bool:
    """Whether the tokenizer adds ``token_id`` at the start (``first``) or end of a text."""
    if token_id is None:
        return False
    ids = tokenizer("a")["input_ids"]
    return bool(ids) and ids[0 if first else -1] == token_id


def _vocab(tokenizer: Any, folder: Path, vocab_size: int) -> tuple[list[str], list[int], str]:
    """Tokens, token types and the pre-tokenizer name of a byte-level BPE tokenizer."""
    import gguf

    data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    if (data.get("model") or {}).get("type") != "BPE" or data.get("decoder", {}).get(
        "type"
    ) != "ByteLevel":
        raise UserError(
            "only byte-level BPE tokenizers (GPT-2 style: SmolLM2, Llama 3) export to GGUF "
            "here: export --format hf and convert with llama.cpp's convert_hf_to_gguf.py"
        )
    pre = _pre_tokenizer(data)
    by_id = {index: token for token, index in tokenizer.get_vocab().items()}
    added = {token.content: token for token in tokenizer.added_tokens_decoder.values()}
    tokens: list[str] = []
    types: list[int] = []
    for index in range(vocab_size):
        token = by_id.get(index)
        if token is None:
            tokens.append(f"[PAD{index}]")
            types.append(gguf.TokenType.UNUSED)
        elif token in added:
            tokens.append(token)
            types.append(
                gguf.TokenType.CONTROL if added[token].special else gguf.TokenType.USER_DEFINED
            )
        else:
            tokens.append(token)
            types.append(gguf.TokenType.NORMAL)
    return tokens, types, pre


def _permute(weights: torch.Tensor, heads: int) -> torch.Tensor:
    """Rotate-half (transformers) to interleaved (llama.cpp) rows of a q or k projection."""
    return (
        weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _tensors(model: Any) -> list[tuple[str, np.ndarray]]:
    """(GGUF name, float32 array) of every tensor, permuted and named as llama.cpp wants."""
    import gguf

    config = model.config
    heads = config.num_attention_heads
    kv_heads = config.num_key_value_heads or heads
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    out = []
    for name, tensor in model.state_dict().items():
        if tied and name == "lm_head.weight":
            continue
        if name.endswith("rotary_emb.inv_freq"):
            continue
        data = tensor.detach().to("cpu", torch.float32)  # a student may sit on a GPU
        if name.endswith(("q_proj.weight", "q_proj.bias")):
            data = _permute(data, heads)
        elif name.endswith(("k_proj.weight", "k_proj.bias")):
            data = _permute(data, kv_heads)
        mapped = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if mapped is None:
            raise UserError(f"cannot map tensor {name!r} to GGUF (not a plain Llama model?)")
        out.append((mapped, data.numpy()))
    return out


def _encode(data: np.ndarray, kind: str) -> tuple[np.ndarray, Any]:
    """The array to write and its GGML type (None: as its numpy dtype says)."""
    import gguf

    if data.ndim <= 1 or kind == "f32":
        return data.astype(np.float32), None
    if kind == "q8_0":
        try:
            return gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0), (
                gguf.GGMLQuantizationType.Q8_0
            )
        except gguf.quants.QuantError:
            pass  # rows not a multiple of the block size: f16, as llama.cpp's converter does
    return data.astype(np.float16), None


def _hyper_parameters(writer: Any, config: Any, kind: str) -> None:
    import gguf

    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(config.num_key_value_heads or heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_dimension_count(head_dim)
    if head_dim != config.hidden_size // heads:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_vocab_size(config.vocab_size)
    rope = getattr(config, "rope_parameters", None) or {}
    theta = rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))
    writer.add_rope_freq_base(float(theta))
    scaling = rope.get("rope_type", "default")
    if scaling == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))
    elif scaling != "default":
        raise UserError(
            f"rope scaling {scaling!r} is not exported here: export --format hf and convert "
            "with llama.cpp's convert_hf_to_gguf.py"
        )
    file_types = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16}
    writer.add_file_type(file_types.get(kind, gguf.LlamaFileType.MOSTLY_Q8_0))


def _write(model: Any, tokenizer: Any, path: Path, kind: str, name: str) -> None:
    """Write the student as a GGUF file of a directly written ``kind`` (f32, f16, q8_0)."""
    import gguf

    config = model.config
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        tokens, types, pre = _vocab(tokenizer, Path(tmp), config.vocab_size)
        special = gguf.SpecialVocab(tmp, load_merges=True, n_vocab=len(tokens))
    special.add_special_token = {
        "bos": _adds(tokenizer, tokenizer.bos_token_id, first=True),
        "eos": _adds(tokenizer, tokenizer.eos_token_id, first=False),
    }
    special.chat_template = chat_template()
    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    writer.add_description("mindmirror student (Mind's Mirror distillation)")
    _hyper_parameters(writer, config, kind)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special.add_to_gguf(writer, quiet=True)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for tensor_name, data in _tensors(model):
        array, raw = _encode(data, kind)
        writer.add_tensor(tensor_name, array, raw_dtype=raw)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _quantize(source: Path, target: Path, kind: str) -> None:
    """llama.cpp's quantizer (as ``llama-quantize``) from an f16 GGUF file."""
    try:
        import llama_cpp
    except ImportError:
        raise UserError(
            f"--quant {kind} uses llama.cpp's quantizer: pip install llama-cpp-python (or use "
            "--quant f16 or q8_0)"
        ) from None
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{kind.upper()}")
    params.nthread = os.cpu_count() or 1
    code = llama_cpp.llama_model_quantize(
        str(source).encode(), str(target).encode(), llama_cpp.byref(params)
    )
    if code != 0:
        raise UserError(f"llama.cpp could not quantize {source.name} to {kind} (code {code})")


def check_gguf_student(model: Any) -> None:
    """UserError unless ``model`` is a causal Llama-architecture model (what is exported)."""
    config = model.config
    if getattr(config, "is_encoder_decoder", False):
        raise UserError(
            "seq2seq students (T5, BART) have no llama.cpp GGUF export here: use --format hf"
        )
    if config.model_type != "llama":
        raise UserError(
            f"GGUF export covers Llama-architecture students (SmolLM2, Llama, TinyLlama); this "
            f"one is {config.model_type!r}: export --format hf and convert with llama.cpp's "
            "convert_hf_to_gguf.py"
        )


def write_gguf(model: Any, tokenizer: Any, path: Path, kind: str = "f16", name: str = "") -> Path:
    """Write ``model`` (a causal Llama student, LoRA merged) as a GGUF file of type ``kind``.

    Written under a temporary name and renamed, so a kill never leaves half a file.

    Raises:
        UserError: not a causal Llama model, a tokenizer or rope scaling llama.cpp cannot be
            given faithfully, an unknown type, or llama.cpp's quantizer missing or failing.
    """
    kind = quant_type(kind)
    check_gguf_student(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        if kind in DIRECT_TYPES:
            _write(model, tokenizer, tmp, kind, name or path.stem)
        else:
            f16 = path.with_name(f".{path.stem}.f16.tmp")
            try:
                _write(model, tokenizer, f16, "f16", name or path.stem)
                _quantize(f16, tmp, kind)
            finally:
                f16.unlink(missing_ok=True)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
