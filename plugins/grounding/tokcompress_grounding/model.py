"""The grounding model: a small `LlavaForConditionalGeneration` with a word-level tokenizer built in code.

Architecture (defaults of `ModelSize`): a CLIP vision tower on 112 px images with 7 px patches (a
16x16 grid, 256 visual tokens after dropping CLS, as LLaVA-1.5 does), a two-layer GELU projector, and
a Llama decoder. Everything is a stock transformers class, saved with ``save_pretrained`` and loaded
with ``from_pretrained`` from the local folder, exactly like a user's real checkpoint.

The tokenizer is a `tokenizers` WordLevel model over a closed vocabulary (`VOCAB`): special tokens,
the question words, and one token per quantised coordinate ``"0"`` .. ``"99"``, so a box answer is
four tokens. Text is lower-cased, plurals are split into singular + suffix ("squares" -> "square"
"s"), and words are split on whitespace and punctuation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

from tokcompress.errors import TokcompressError
from .data import COLOURS, COUNT_WORDS, IMAGE_SIZE, PLURALS, SHAPES, SIZES

__all__ = [
    "SPECIAL_TOKENS",
    "VOCAB",
    "COORD_IDS",
    "IMAGE_TOKEN",
    "PAD_ID",
    "BOS_ID",
    "EOS_ID",
    "UNK_ID",
    "IMAGE_TOKEN_ID",
    "INPUT_SIZE",
    "PATCH_SIZE",
    "TEMPLATES",
    "DEFAULT_TEMPLATE",
    "CHAT_TEMPLATE",
    "ModelSize",
    "format_prompt",
    "build_tokenizer",
    "build_processor",
    "build_config",
    "build_model",
    "sincos_positions",
    "sincos_values",
    "save_pretrained",
    "load_pretrained",
    "MissingModelError",
]

IMAGE_TOKEN = "<image>"
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>", IMAGE_TOKEN)
PAD_ID, BOS_ID, EOS_ID, UNK_ID, IMAGE_TOKEN_ID = range(len(SPECIAL_TOKENS))

_WORDS = (
    ["where", "is", "the", "how", "many", "?", "user", "assistant", ":"]
    + list(SIZES)
    + list(COLOURS)
    + list(SHAPES)
    + sorted({PLURALS[s][len(s):] for s in SHAPES})
    + list(COUNT_WORDS)
)
VOCAB: tuple[str, ...] = SPECIAL_TOKENS + tuple(_WORDS) + tuple(str(i) for i in range(IMAGE_SIZE))
"""Token strings in id order. Coordinates 0-99 are single tokens."""
COORD_IDS = list(range(len(SPECIAL_TOKENS) + len(_WORDS), len(VOCAB)))
"""Token ids of the coordinates 0 .. 99, in value order."""

INPUT_SIZE = 112
"""Side of the image the vision tower sees; the processor resizes every image to it (bicubic)."""
PATCH_SIZE = 7
"""112 / 7 = 16 patches per side."""

TEMPLATES = {
    "chat": "USER: <image>\n{question} ASSISTANT:",
    "plain": "<image>\n{question}",
}
"""Prompt formats the model is trained on: LLaVA-1.5's conversation format, and the bare image + question."""
DEFAULT_TEMPLATE = "chat"

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: "
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<image>\n{% endif %}{% endfor %}"
    "{% for c in message['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}"
    "{% elif message['role'] == 'assistant' %} ASSISTANT: "
    "{% for c in message['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %} ASSISTANT:{% endif %}"
)
"""Renders a one-turn conversation exactly as ``TEMPLATES["chat"]`` (processor.apply_chat_template)."""


@dataclass(frozen=True)
class ModelSize:
    """Widths and depths of the three parts, and the LM's RoPE base. The defaults are the training recipe's."""

    vision_hidden: int = 96
    vision_layers: int = 3
    vision_heads: int = 4
    vision_intermediate: int = 192
    text_hidden: int = 128
    text_layers: int = 4
    text_heads: int = 4
    text_kv_heads: int = 4
    text_intermediate: int = 384
    rope_theta: int = 1_000_000
    """RoPE base. Llama's 10000 rotates most query/key channels by more than a radian across the 256
    visual tokens, leaving few channels to match content; 1e6 (Llama 3 uses 5e5) leaves most of them."""


def format_prompt(question: str, template: str = DEFAULT_TEMPLATE) -> str:
    """The prompt text for one question, with the image placeholder in place."""
    if template not in TEMPLATES:
        raise ValueError(f"template must be one of {sorted(TEMPLATES)}, got {template!r}")
    return TEMPLATES[template].format(question=question)


def build_tokenizer():
    """A `PreTrainedTokenizerFast` over `VOCAB`: lower-case, whitespace/punctuation split, BOS prepended."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(VOCAB)}
    core = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    # a plural is its singular plus a suffix token, as a subword tokenizer would split it: "squares" ->
    # "square" "s", so the shape words of counting questions share their embeddings with grounding's
    core.normalizer = normalizers.Sequence(
        [normalizers.Lowercase()]
        + [normalizers.Replace(PLURALS[s], f"{s} {PLURALS[s][len(s):]}") for s in SHAPES]
    )
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", BOS_ID)]
    )
    core.add_special_tokens(list(SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        padding_side="left",
        clean_up_tokenization_spaces=False,
        model_max_length=512,
    )


def build_processor(tokenizer=None):
    """A `LlavaProcessor`: CLIP preprocessing to 112 px, and the image placeholder expanded to 256 tokens."""
    from transformers import CLIPImageProcessorPil, LlavaProcessor

    # The PIL backend explicitly: the torchvision one resizes slightly differently, and the model should
    # see the pixels it was trained on whether or not torchvision is installed.
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": INPUT_SIZE},
        crop_size={"height": INPUT_SIZE, "width": INPUT_SIZE},
        do_center_crop=True,
        resample=3,  # PIL bicubic
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer if tokenizer is not None else build_tokenizer(),
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        image_token=IMAGE_TOKEN,
        chat_template=CHAT_TEMPLATE,
    )


def build_config(size: ModelSize = ModelSize(), init_std: float = 0.02):
    """The `LlavaConfig` for `size`; the LM's vocabulary is exactly `VOCAB`.

    init_std: standard deviation of the random initialisation of the LM and projector weights
    (``initializer_range``); the vision tower keeps CLIP's own depth-scaled initialisation.
    """
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    grid = INPUT_SIZE // PATCH_SIZE
    vision = CLIPVisionConfig(
        image_size=INPUT_SIZE,
        patch_size=PATCH_SIZE,
        hidden_size=size.vision_hidden,
        num_hidden_layers=size.vision_layers,
        num_attention_heads=size.vision_heads,
        intermediate_size=size.vision_intermediate,
        projection_dim=size.vision_hidden,
        hidden_act="gelu",
    )
    text = LlamaConfig(
        vocab_size=len(VOCAB),
        hidden_size=size.text_hidden,
        num_hidden_layers=size.text_layers,
        num_attention_heads=size.text_heads,
        num_key_value_heads=size.text_kv_heads,
        intermediate_size=size.text_intermediate,
        max_position_embeddings=512,
        rope_parameters={"rope_type": "default", "rope_theta": float(size.rope_theta)},
        initializer_range=init_std,
        tie_word_embeddings=True,
        pad_token_id=PAD_ID,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
    )
    return LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=IMAGE_TOKEN_ID,
        image_seq_length=grid * grid,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
        tie_word_embeddings=True,
    )


def sincos_positions(grid: int, dim: int, amplitude: float = 0.5):
    """``[grid * grid, dim]`` 2-D sine/cosine position codes (MAE style): half the channels encode the
    column, half the row, each with ``dim / 4`` frequencies from 1 to 1/10000 cycles per patch (radians)."""
    import torch

    if dim % 4:
        raise ValueError(f"dim must be a multiple of 4 for 2-D sine/cosine codes, got {dim}")
    freqs = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))
    rows, cols = torch.meshgrid(torch.arange(grid, dtype=torch.float64), torch.arange(grid, dtype=torch.float64), indexing="ij")

    def code(coord):
        angles = coord.reshape(-1, 1) * freqs
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    return (amplitude * torch.cat([code(cols), code(rows)], dim=1)).float()


def sincos_values(count: int, dim: int, amplitude: float):
    """``[count, dim]`` 1-D sine/cosine codes of the values 0 .. count-1 (``dim / 2`` frequencies)."""
    import torch

    if dim % 2:
        raise ValueError(f"dim must be even for sine/cosine codes, got {dim}")
    freqs = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim // 2))
    angles = torch.arange(count, dtype=torch.float64)[:, None] * freqs
    return (amplitude * torch.cat([angles.sin(), angles.cos()], dim=1)).float()


def build_model(size: ModelSize = ModelSize(), seed: int = 0, init_std: float = 0.02):
    """A freshly initialised model (deterministic given `seed`), in fp32, eval mode.

    Two deliberate initialisations, both of learned tables (training changes them freely):
    the vision tower's position embeddings start from 2-D sine/cosine codes (the CLS slot at zero)
    instead of small random values, which the patch content would drown; and the (tied) embeddings
    of the coordinate tokens "0" .. "99" start from 1-D sine/cosine codes of their value, so that
    neighbouring coordinates start with similar logits. Both give a model that must read positions
    off the grid and write them as tokens a head start on the geometry.
    """
    import torch
    from transformers import GenerationConfig, LlavaForConditionalGeneration

    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(build_config(size, init_std))
    grid = INPUT_SIZE // PATCH_SIZE
    with torch.no_grad():
        table = model.model.vision_tower.embeddings.position_embedding.weight
        table.zero_()
        table[1:] = sincos_positions(grid, size.vision_hidden)
        std = model.config.text_config.initializer_range
        words = model.model.language_model.embed_tokens.weight
        words[COORD_IDS] = sincos_values(len(COORD_IDS), size.text_hidden, amplitude=std * math.sqrt(2))
    model.generation_config = GenerationConfig(
        max_new_tokens=6, do_sample=False, bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=PAD_ID
    )
    return model.eval()


def size_of(model) -> ModelSize:
    """The `ModelSize` a model was built with (read back from its config)."""
    v, t = model.config.vision_config, model.config.text_config
    return ModelSize(
        vision_hidden=v.hidden_size,
        vision_layers=v.num_hidden_layers,
        vision_heads=v.num_attention_heads,
        vision_intermediate=v.intermediate_size,
        text_hidden=t.hidden_size,
        text_layers=t.num_hidden_layers,
        text_heads=t.num_attention_heads,
        text_kv_heads=t.num_key_value_heads,
        text_intermediate=t.intermediate_size,
        rope_theta=int(t.rope_parameters["rope_theta"]),
    )


def save_pretrained(model, processor, out_dir: Path) -> Path:
    """Write config, safetensors weights, generation config, tokenizer and processor config to `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


class MissingModelError(TokcompressError, FileNotFoundError):
    """The model folder holds no trained model."""


def load_pretrained(path: Path):
    """``(model, processor)`` from a saved folder through the stock ``from_pretrained`` loaders (eval, fp32)."""
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    path = Path(path)
    if not (path / "config.json").is_file():
        raise MissingModelError(f"no model at {path}: config.json missing (train one with "
                                f"'python -m tokcompress_grounding.train --out {path}', docs/grounding-model.md)")
    model = LlavaForConditionalGeneration.from_pretrained(path, dtype="float32")
    processor = AutoProcessor.from_pretrained(path)
    return model.eval(), processor


def describe(size: ModelSize) -> dict:
    return asdict(size)
