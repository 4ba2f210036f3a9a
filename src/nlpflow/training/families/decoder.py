"""Decoder-only language models (GPT-2, Llama, Qwen, ...) as text classifiers.

`train.pretrained` may name a decoder as well as an encoder: AutoModelForSequenceClassification
puts a linear head on the hidden state of each text's last token that is not the pad token (the
only state in a causal model that has read the whole text). Such tokenizers often have no pad
token, and the head finds "last" by comparing token ids with `config.pad_token_id`, so batching
is only correct when padding is arranged as `prepare_decoder` arranges it:

- pad token: the tokenizer's own when it has one, else its end-of-text token (no new embedding
  row, so the pretrained weights stay as they are); `config.pad_token_id` names it.
- right padding: a causal layer never looks ahead, so real tokens never see the pads after them,
  and their positions start at 0 as when the text is alone (GPT-2 numbers positions 0, 1, ... per
  row, ignoring the mask: left padding would shift every position and change the prediction).
- special tokens split: the text "<|endoftext|>" is tokenized as its characters, not as the
  end-of-text token, so the pad id never occurs inside a text and "the last token that is not a
  pad" is always the text's own last token, in a batch or alone.
- no token_type_ids: GPT-2 adds them through its word embeddings (a zero id adds the embedding of
  token 0 to every position), which its pretraining never did.

The pad token and `pad_token_id` are saved with the model; the other three are tokenizer state
that save_pretrained does not keep, so every load applies them again (nlpflow's `load` does).

    model, tokenizer = ...from_pretrained(folder)
    if is_decoder_only(model.config):
        prepare_decoder(model, tokenizer)
"""

from __future__ import annotations

from typing import Any

from nlpflow.errors import ModelError


def is_decoder_only(config: Any) -> bool:
    """A causal language model: transformers maps its type to a causal-LM head and to no
    masked-LM head (BERT-like encoders have both; DistilBERT, MPNet the masked one only)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES as CAUSAL
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES as MASKED

    kind = getattr(config, "model_type", None)
    return kind in CAUSAL and kind not in MASKED


def prepare_decoder(model: Any, tokenizer: Any) -> None:
    """Pad token, right padding, split special tokens and no token_type_ids (module docstring),
    in place; `model` is any model on the decoder (a classifier, or the bare decoder)."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelError(
                f"the tokenizer of decoder {model.config.model_type!r} has neither a pad nor an "
                "end-of-text token, so texts of different lengths cannot share a batch: set "
                "pad_token in the model folder's tokenizer_config.json to one of its tokens."
            )
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    tokenizer.split_special_tokens = True
    tokenizer.model_input_names = [n for n in tokenizer.model_input_names if n != "token_type_ids"]
    model.config.pad_token_id = tokenizer.pad_token_id


def last_token_states(hidden: Any, mask: Any) -> Any:
    """Each row's hidden state at its last real token (the last 1 of the attention mask, for
    either padding side): what a decoder's states summarise the text at."""
    import torch

    positions = torch.arange(mask.shape[1], device=mask.device)
    last = (positions * mask.to(positions.dtype)).argmax(dim=1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
