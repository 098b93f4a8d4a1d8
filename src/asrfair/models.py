"""Which kind of speech model a checkpoint is, whether the audit's model options fit it, and
loading it with its processor through the Auto classes.

Detection reads config.json alone (``AutoConfig``, no weights), so the preflight refuses a
bad combination (``--language`` on a CTC model, a Whisper without ``--no-train``) in a second,
before any audio is decoded. ``ctc`` is every ``AutoModelForCTC`` family that reads raw
waveforms (wav2vec2, XLS-R, MMS, HuBERT, WavLM, Data2Vec-audio...); ``seq2seq`` is every
``AutoModelForSpeechSeq2Seq`` one (Whisper...). Nothing here imports torch or transformers at
module level: the CLI may import it while it builds its options.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asrfair.audio import TARGET_RATE
from asrfair.errors import AsrfairError

if TYPE_CHECKING:
    import torch

    from asrfair.infer import Seq2SeqTranscriber, Transcriber

CTC, SEQ2SEQ = "ctc", "seq2seq"
TASKS = ("transcribe", "translate")
PROMPT_TOKENS = 4  # Whisper's <|startoftranscript|><|lang|><|task|><|notimestamps|>


@dataclass(frozen=True)
class ModelChoice:
    """The checkpoint and the audit options that decide how it is loaded and decoded."""

    path: str
    adapter: str = ""  # MMS language adapter (CTC)
    language: str = ""  # seq2seq only, like the three below
    task: str = ""
    max_new_tokens: int | None = None

    def seq2seq_options(self) -> Iterator[tuple[str, str, Any]]:
        """The options given that only a sequence-to-sequence model can use: (flag, generate's
        keyword, value)."""
        for keyword in ("language", "task", "max_new_tokens"):
            value = getattr(self, keyword)
            if value:
                yield "--" + keyword.replace("_", "-"), keyword, value

    def generate_options(self) -> dict[str, Any]:
        """``generate``'s keywords: only those given, so a checkpoint's own defaults stand."""
        return {keyword: value for _, keyword, value in self.seq2seq_options()}


@dataclass(frozen=True)
class ModelInfo:
    """What config.json says: the model family and whether asrfair reads it as CTC or seq2seq."""

    path: str
    kind: str
    model_type: str
    config: Any


def model_load_error(model: str, exc: Exception) -> AsrfairError:
    """Name the --model and say what to do: a broken folder, or a hub id with no network."""
    if Path(model).exists():
        return AsrfairError(
            f"--model {model}: not a CTC or sequence-to-sequence speech checkpoint "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            "it needs config.json, weights and its processor files"
        )
    if model.startswith((".", "/", "~")) or model.count("/") > 1:  # a path, not a hub id
        return AsrfairError(f"--model {model}: no such folder; check the path")
    return AsrfairError(
        f"--model {model}: no such folder, and the Hugging Face hub is unreachable "
        f"({type(exc).__name__}); download the checkpoint elsewhere and pass its local folder"
    )


def inspect_model(model: str) -> ModelInfo:
    """The checkpoint's kind, read from its config.json by transformers' own Auto tables."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CTC_MAPPING_NAMES,
        MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES,
    )

    try:
        config = AutoConfig.from_pretrained(model)
    except Exception as exc:
        raise model_load_error(model, exc) from None
    model_type = str(config.model_type)
    if model_type in MODEL_FOR_CTC_MAPPING_NAMES:
        return ModelInfo(model, CTC, model_type, config)
    if model_type in MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES:
        return ModelInfo(model, SEQ2SEQ, model_type, config)
    raise AsrfairError(
        f"--model {model}: a {model_type!r} checkpoint is neither a CTC nor a sequence-to-sequence "
        "speech model; asrfair audits AutoModelForCTC and AutoModelForSpeechSeq2Seq checkpoints"
    )


# --- options against the model ------------------------------------------------------------------
def check_choice(info: ModelInfo, choice: ModelChoice, *, no_train: bool) -> None:
    """Refuse, in one line naming the option, what this checkpoint cannot do."""
    if choice.task and choice.task not in TASKS:
        raise AsrfairError(f"--task {choice.task}: use {' or '.join(TASKS)}")
    if choice.max_new_tokens is not None and choice.max_new_tokens < 1:
        raise AsrfairError(f"--max-new-tokens {choice.max_new_tokens}: use 1 or more")
    if info.kind == CTC:
        _check_ctc(info, choice)
    else:
        _check_seq2seq(info, choice, no_train=no_train)


def _check_ctc(info: ModelInfo, choice: ModelChoice) -> None:
    for flag, keyword, value in choice.seq2seq_options():
        raise AsrfairError(
            f"{flag} {value}: --model {info.path} is a CTC model ({info.model_type}), which "
            f"takes no {keyword}; drop {flag} (an MMS checkpoint takes --adapter)"
        )
    reads = _model_class(info).main_input_name
    if reads != "input_values":
        raise AsrfairError(
            f"--model {info.path}: a {info.model_type} CTC model reads {reads}, not raw "
            "waveforms; asrfair's CTC path takes waveform models (wav2vec2, HuBERT, WavLM...)"
        )
    languages = nested_vocab_languages(info.path)
    if choice.adapter:
        _check_adapter(info, choice.adapter, languages)
    elif languages:
        raise AsrfairError(
            f"--model {info.path} has one vocabulary per language ({_listed(languages)}); "
            "choose one with --adapter LANG"
        )


def _check_adapter(info: ModelInfo, adapter: str, languages: list[str]) -> None:
    """An MMS checkpoint has adapter layers (``adapter_attn_dim``) and one weight file per
    language beside them; a local folder's files are checked here, a hub id's when loaded."""
    flag = f"--adapter {adapter}"
    if getattr(info.config, "adapter_attn_dim", None) is None:
        raise AsrfairError(
            f"{flag}: --model {info.path} has no language adapters (config.adapter_attn_dim is "
            "unset); drop --adapter"
        )
    folder = Path(info.path)
    if folder.is_dir():
        found = sorted(
            p.name.split(".")[1]
            for p in folder.glob("adapter.*.*")
            if p.suffix in (".bin", ".safetensors")
        )
        if adapter not in found:
            raise AsrfairError(
                f"{flag}: --model {info.path} has no adapter.{adapter}.safetensors; its adapters: "
                f"{_listed(found)}"
            )
    if languages and adapter not in languages:
        raise AsrfairError(
            f"{flag}: the tokenizer of --model {info.path} has no {adapter!r} vocabulary; "
            f"its languages: {_listed(languages)}"
        )


def _check_seq2seq(info: ModelInfo, choice: ModelChoice, *, no_train: bool) -> None:
    if not no_train:
        raise AsrfairError(
            f"--model {info.path} is a sequence-to-sequence model ({info.model_type}); asrfair "
            "fine-tunes CTC models only: add --no-train to audit it as it is"
        )
    if choice.adapter:
        raise AsrfairError(
            f"--adapter {choice.adapter}: --model {info.path} is a sequence-to-sequence model "
            f"({info.model_type}) without language adapters; drop --adapter (use --language)"
        )
    generate = inspect.signature(_model_class(info).generate).parameters
    for flag, keyword, value in choice.seq2seq_options():
        if keyword != "max_new_tokens" and keyword not in generate:
            raise AsrfairError(
                f"{flag} {value}: the {info.model_type} model's generate takes no "
                f"{keyword}; drop {flag}"
            )
    if choice.language:
        _check_language(info, choice.language)
    if choice.task and info.model_type == "whisper" and not _multilingual(info):
        raise AsrfairError(
            f"--task {choice.task}: --model {info.path} is English-only and takes no task; "
            "drop --task"
        )
    positions = getattr(info.config, "max_target_positions", None)
    if choice.max_new_tokens and positions and choice.max_new_tokens + PROMPT_TOKENS > positions:
        raise AsrfairError(
            f"--max-new-tokens {choice.max_new_tokens}: --model {info.path} decodes at most "
            f"{positions} tokens, {PROMPT_TOKENS} of them its prompt; use "
            f"--max-new-tokens {positions - PROMPT_TOKENS} or less"
        )


def _model_class(info: ModelInfo) -> Any:
    """The class the Auto loader will build, without loading weights (for its signature)."""
    import transformers
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CTC_MAPPING_NAMES,
        MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES,
    )

    names = (
        MODEL_FOR_CTC_MAPPING_NAMES
        if info.kind == CTC
        else MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES
    )
    return getattr(transformers, names[info.model_type])


def _multilingual(info: ModelInfo) -> bool:
    """Whether a Whisper checkpoint takes --language and --task (its generation config says)."""
    from transformers import GenerationConfig

    try:
        generation = GenerationConfig.from_pretrained(info.path)
    except Exception as exc:
        raise model_load_error(info.path, exc) from None
    known = getattr(generation, "lang_to_id", None) or {}
    return bool(getattr(generation, "is_multilingual", bool(known)) and known)


def _check_language(info: ModelInfo, language: str) -> None:
    """Whisper takes a code (``fr``), a name (``french``) or a token (``<|fr|>``); the
    checkpoint's generation config lists the languages it was trained on."""
    from transformers import GenerationConfig
    from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

    try:
        generation = GenerationConfig.from_pretrained(info.path)
    except Exception as exc:
        raise model_load_error(info.path, exc) from None
    known: dict[str, int] = getattr(generation, "lang_to_id", None) or {}
    if not getattr(generation, "is_multilingual", bool(known)) or not known:
        raise AsrfairError(
            f"--language {language}: --model {info.path} is not multilingual; drop --language"
        )
    code = TO_LANGUAGE_CODE.get(language.lower(), language.lower()).strip("<|>")
    if f"<|{code}|>" not in known:
        codes = [token.strip("<|>") for token in known]
        raise AsrfairError(
            f"--language {language}: --model {info.path} does not know it; its languages: "
            f"{_listed(codes)}"
        )


def _listed(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" ... ({len(names)} in all)" if len(names) > limit else "") or "none"


def input_window_seconds(processor: Any) -> float | None:
    """The longest clip a model reads whole (Whisper: 30 s); None when clips are not cut."""
    samples = getattr(processor.feature_extractor, "n_samples", None)
    return samples / TARGET_RATE if samples else None


# --- vocabularies -------------------------------------------------------------------------------
def read_vocab_file(model: str) -> dict[str, Any] | None:
    """The vocab.json beside a local checkpoint, if there is one (MMS: one table per language)."""
    path = Path(model) / "vocab.json"
    if not path.is_file():
        return None
    vocab: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return vocab


def nested_vocab_languages(model: str) -> list[str]:
    """The languages of an MMS-style vocab.json (``{"eng": {...}, "fra": {...}}``), else []."""
    vocab = read_vocab_file(model) or {}
    return sorted(k for k, v in vocab.items() if isinstance(v, dict))


# --- loading ------------------------------------------------------------------------------------
def load_processor(model: str, adapter: str = "") -> Any:
    """The checkpoint's own processor (feature extractor + tokenizer), set to ``adapter``'s
    vocabulary when its tokenizer has one per language."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(model)  # type: ignore[no-untyped-call]
    if not hasattr(processor, "feature_extractor") or not hasattr(processor, "tokenizer"):
        raise AsrfairError(
            f"--model {model}: its processor lacks a feature extractor or a tokenizer "
            "(preprocessor_config.json, tokenizer files); save the processor beside the weights"
        )
    if adapter and nested_vocab_languages(model):
        try:
            processor.tokenizer.set_target_lang(adapter)
        except ValueError as exc:
            raise adapter_error(adapter, model, exc) from None
    return processor


def apply_adapter(net: Any, adapter: str, model: str) -> Any:
    """MMS: swap in the language's adapter layers and CTC head (``adapter.<lang>.safetensors``)."""
    if not adapter:
        return net
    try:
        net.load_adapter(adapter)
    except Exception as exc:
        raise adapter_error(adapter, model, exc) from None
    return net


def adapter_error(adapter: str, model: str, exc: Exception) -> AsrfairError:
    """The adapter's weights or vocabulary did not load: name --adapter and the checkpoint."""
    return AsrfairError(
        f"--adapter {adapter}: --model {model} could not load it ({type(exc).__name__}: "
        f"{str(exc).splitlines()[0] if str(exc) else ''}); name one of its adapter.LANG files"
    )


def load_transcriber(choice: ModelChoice, device: torch.device) -> Transcriber | Seq2SeqTranscriber:
    """The callable that turns a batch of waveforms into text, for either kind of model."""
    from asrfair.infer import Seq2SeqTranscriber, Transcriber

    info = inspect_model(choice.path)
    try:
        processor = load_processor(choice.path, choice.adapter)
        if info.kind == SEQ2SEQ:
            from transformers import AutoModelForSpeechSeq2Seq

            seq2seq = AutoModelForSpeechSeq2Seq.from_pretrained(choice.path)
            return Seq2SeqTranscriber(seq2seq, processor, device, choice.generate_options())
        from transformers import AutoModelForCTC

        ctc = AutoModelForCTC.from_pretrained(choice.path)
    except AsrfairError:
        raise
    except Exception as exc:
        raise model_load_error(choice.path, exc) from None
    return Transcriber(apply_adapter(ctc, choice.adapter, choice.path), processor, device)
