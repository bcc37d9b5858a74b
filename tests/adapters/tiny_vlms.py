"""Tiny random-weight VLM checkpoints written at test time: no hub, no weights downloaded.

Each builder writes a transformers checkpoint folder (config, random weights, processor, tokenizer, chat
template) for one family. The tokenizer is a byte-level BPE trained here on a few prompt phrases, so every
byte is encodable; the special tokens are the ones each processor and chat template needs. The chat
templates below are written for these tests and follow each family's turn markers and image placement:

* Qwen2.5-VL: `<|im_start|>role\\n...<|im_end|>`, a default system turn, images in content order as
  `<|vision_start|><|image_pad|><|vision_end|>`;
* Gemma3: `<start_of_turn>user\\n`, the system text folded into the first user turn, `<start_of_image>`;
* LLaVA-OneVision (llava-hf): every image of a turn rendered before its text, as `<image>\\n`;
* Mllama: `<|start_header_id|>role<|end_header_id|>\\n\\n`, `<|image|>` in content order.

Sizes are minimal (hidden 32, 1-2 layers) so that a CPU generates a few tokens in well under a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TRAINING_TEXT = [
    "Task:\nGiven the input medical image: CT scan of the abdomen, return the coordinates of the bounding box.",
    "Additional information:\nThe image size is 504 pixels (width) x 504 pixels (height).",
    "The pixel size for this image is 0.711 millimeters (width) x 0.711 millimeters (height).",
    "Format requirement:\nThe answer should be four decimal numbers separated by commas without any units.",
    "Reasoning steps:\nStep 1: Identify the relative coordinates of the landmark and the line.",
    "estimate the major and minor axis lengths of the ellipse enclosing the kidney tumor, in millimeters.",
]

QWEN_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if loop.first and message.role != 'system' -%}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{{ '<|im_start|>' + message.role + '\\n' }}"
    "{%- for item in message.content -%}"
    "{%- if item.type == 'image' -%}<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif item.type == 'text' -%}{{ item.text }}{%- endif -%}"
    "{%- endfor -%}{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

GEMMA_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0].role == 'system' -%}"
    "{%- set system_text = messages[0].content[0].text + '\\n\\n' -%}{%- set turns = messages[1:] -%}"
    "{%- else -%}{%- set system_text = '' -%}{%- set turns = messages -%}{%- endif -%}"
    "{%- for message in turns -%}"
    "{{ '<start_of_turn>' + ('model' if message.role == 'assistant' else message.role) + '\\n' }}"
    "{%- if loop.first -%}{{ system_text }}{%- endif -%}"
    "{%- for item in message.content -%}"
    "{%- if item.type == 'image' -%}<start_of_image>{%- elif item.type == 'text' -%}{{ item.text }}{%- endif -%}"
    "{%- endfor -%}{{ '<end_of_turn>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
)

LLAVA_OV_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message.role + '\\n' }}"
    "{%- for item in message.content -%}{%- if item.type == 'image' -%}{{ '<image>\\n' }}{%- endif -%}{%- endfor -%}"
    "{%- for item in message.content -%}{%- if item.type == 'text' -%}{{ item.text }}{%- endif -%}{%- endfor -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

MLLAMA_TEMPLATE = (
    "{{ bos_token }}"
    "{%- for message in messages -%}"
    "{{ '<|start_header_id|>' + message.role + '<|end_header_id|>\\n\\n' }}"
    "{%- for item in message.content -%}"
    "{%- if item.type == 'image' -%}<|image|>{%- elif item.type == 'text' -%}{{ item.text }}{%- endif -%}"
    "{%- endfor -%}<|eot_id|>"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif -%}"
)


def build_tokenizer(
    special: list[str],
    named: dict[str, str],
    chat_template: str,
    *,
    eos: str,
    pad: str,
    bos: str | None = None,
) -> Any:
    """A byte-level BPE tokenizer (vocabulary ~400) with `special` tokens; `named` ones become attributes."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token=None))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=special,
        show_progress=False,
    )
    backend.train_from_iterator(TRAINING_TEXT, trainer)
    kwargs: dict[str, Any] = {
        "tokenizer_object": backend,
        "eos_token": eos,
        "pad_token": pad,
        "extra_special_tokens": named,
        "chat_template": chat_template,
    }
    if bos:
        kwargs["bos_token"] = bos
    return PreTrainedTokenizerFast(**kwargs)


def _save(folder: Path, model: Any, processor: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _ids(tokenizer: Any, tokens: list[str]) -> dict[str, int]:
    return {t: int(tokenizer.convert_tokens_to_ids(t)) for t in tokens}


def build_qwen2_5_vl(folder: Path) -> Path:
    """Qwen2.5-VL: patch 14, merge 2 (factor 28), processor limits 3136 / 12845056 as the paper's."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    special = [
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<|vision_start|>",
        "<|vision_end|>",
        "<|image_pad|>",
        "<|video_pad|>",
    ]
    named = {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"}
    tokenizer = build_tokenizer(special, named, QWEN_TEMPLATE, eos="<|im_end|>", pad="<|endoftext|>")
    ids = _ids(tokenizer, special)
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=3136, max_pixels=12845056),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=QWEN_TEMPLATE,
    )
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "max_position_embeddings": 8192,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 32,
            "fullatt_block_indexes": [1],
            "window_size": 56,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(0)
    return _save(folder, Qwen2_5_VLForConditionalGeneration(config), processor)


def build_gemma3(folder: Path) -> Path:
    """Gemma3: SigLIP at 56x56 (patch 14), 4 soft tokens per image, pan-and-scan off."""
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3Processor
    from transformers.models.gemma3.image_processing_gemma3 import Gemma3ImageProcessor

    special = [
        "<pad>",
        "<eos>",
        "<bos>",
        "<start_of_turn>",
        "<end_of_turn>",
        "<start_of_image>",
        "<end_of_image>",
        "<image_soft_token>",
    ]
    named = {"image_token": "<image_soft_token>", "boi_token": "<start_of_image>", "eoi_token": "<end_of_image>"}
    tokenizer = build_tokenizer(special, named, GEMMA_TEMPLATE, bos="<bos>", eos="<end_of_turn>", pad="<pad>")
    ids = _ids(tokenizer, special)
    image_processor = Gemma3ImageProcessor(
        size={"height": 56, "width": 56}, image_mean=[0.5] * 3, image_std=[0.5] * 3, do_pan_and_scan=False
    )
    processor = Gemma3Processor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=GEMMA_TEMPLATE, image_seq_length=4
    )
    config = Gemma3Config(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 16,
            "query_pre_attn_scalar": 16,
            "sliding_window": 64,
            "max_position_embeddings": 8192,
            "pad_token_id": ids["<pad>"],
            "eos_token_id": ids["<end_of_turn>"],
            "bos_token_id": ids["<bos>"],
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 56,
            "patch_size": 14,
        },
        mm_tokens_per_image=4,
        boi_token_index=ids["<start_of_image>"],
        eoi_token_index=ids["<end_of_image>"],
        image_token_index=ids["<image_soft_token>"],
    )
    torch.manual_seed(0)
    return _save(folder, Gemma3ForConditionalGeneration(config), processor)


LLAVA_OV_PINPOINTS = [[28, 28], [28, 56], [56, 28], [56, 56]]


def build_llava_onevision(folder: Path) -> Path:
    """LLaVA-OneVision: SigLIP at 28x28, anyres grid pinpoints 28/56 (read back as the geometry grid)."""
    import torch
    from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration, LlavaOnevisionProcessor
    from transformers.models.llava_onevision.image_processing_llava_onevision import LlavaOnevisionImageProcessor
    from transformers.models.llava_onevision.video_processing_llava_onevision import LlavaOnevisionVideoProcessor

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]
    named = {"image_token": "<image>", "video_token": "<video>"}
    tokenizer = build_tokenizer(special, named, LLAVA_OV_TEMPLATE, eos="<|im_end|>", pad="<|endoftext|>")
    ids = _ids(tokenizer, special)
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(
            size={"height": 28, "width": 28}, image_grid_pinpoints=LLAVA_OV_PINPOINTS
        ),
        tokenizer=tokenizer,
        video_processor=LlavaOnevisionVideoProcessor(size={"height": 28, "width": 28}),
        chat_template=LLAVA_OV_TEMPLATE,
        num_image_tokens=4,
        vision_feature_select_strategy="full",
    )
    config = LlavaOnevisionConfig(
        text_config={
            "model_type": "qwen2",
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "max_position_embeddings": 8192,
            "pad_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
        },
        vision_config={
            "model_type": "siglip_vision_model",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 28,
            "patch_size": 14,
        },
        image_token_index=ids["<image>"],
        video_token_index=ids["<video>"],
        image_grid_pinpoints=LLAVA_OV_PINPOINTS,
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
    )
    torch.manual_seed(0)
    return _save(folder, LlavaOnevisionForConditionalGeneration(config), processor)


def build_mllama(folder: Path) -> Path:
    """Mllama (Llama 3.2 Vision): tile 28, at most 4 tiles, one cross-attention layer."""
    import torch
    from transformers import MllamaConfig, MllamaForConditionalGeneration, MllamaProcessor
    from transformers.models.mllama.image_processing_mllama import MllamaImageProcessor

    special = [
        "<|finetune_right_pad_id|>",
        "<|begin_of_text|>",
        "<|eot_id|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|image|>",
        "<|python_tag|>",
    ]
    tokenizer = build_tokenizer(
        special,
        {"image_token": "<|image|>"},
        MLLAMA_TEMPLATE,
        bos="<|begin_of_text|>",
        eos="<|eot_id|>",
        pad="<|finetune_right_pad_id|>",
    )
    ids = _ids(tokenizer, special)
    processor = MllamaProcessor(
        image_processor=MllamaImageProcessor(size={"height": 28, "width": 28}, max_image_tiles=4),
        tokenizer=tokenizer,
        chat_template=MLLAMA_TEMPLATE,
    )
    config = MllamaConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "cross_attention_layers": [1],
            "max_position_embeddings": 8192,
            "bos_token_id": ids["<|begin_of_text|>"],
            "eos_token_id": ids["<|eot_id|>"],
            "pad_token_id": ids["<|finetune_right_pad_id|>"],
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_global_layers": 1,
            "attention_heads": 2,
            "image_size": 28,
            "patch_size": 14,
            "max_num_tiles": 4,
            "intermediate_layers_indices": [0],
            "vision_output_dim": 64,
        },
        image_token_index=ids["<|image|>"],
    )
    torch.manual_seed(0)
    return _save(folder, MllamaForConditionalGeneration(config), processor)


BUILDERS = {
    "qwen2_5_vl": build_qwen2_5_vl,
    "gemma3": build_gemma3,
    "llava_onevision": build_llava_onevision,
    "mllama": build_mllama,
}
