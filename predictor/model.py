"""SentimentModel: the kserve.Model that ties decoding, batching and the engine together.

One hook per lifecycle stage, as KServe expects: `load_async` (engine load +
warm-up, then `ready`), `preprocess` (decode and validate), `predict` (batch
through the engine), `postprocess` (encode for the caller's protocol).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from kserve import InferRequest, Model
from opentelemetry import trace

from predictor import metrics
from predictor.batching import Batcher, Row
from predictor.engine import Engine
from predictor.errors import NotReady
from predictor.explain import Explained, ExplainSettings, check_bounds, explain_texts
from predictor.featurestore.history import Authored, UserHistory
from predictor.featurestore.predictions import PredictionCache
from predictor.featurestore.store import FeatureStore
from predictor.modelcard import ServingCard
from predictor.prediction import Prediction
from predictor.protocol import (
    LABEL_OUTPUT,
    PROBS_OUTPUT,
    TEXT_INPUT,
    Decoded,
    Instance,
    Protocol,
    decode_v1,
    decode_v2,
    encode_v1,
    encode_v2,
)
from predictor.settings import ServingSettings
from predictor.sources.resolver import Resolved, TweetResolver
from predictor.tracing import Tracing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    """What `predict` hands to `postprocess`: the request and one prediction per instance."""

    decoded: Decoded
    predictions: list[Prediction]


@dataclass(frozen=True)
class Classified:
    """One instance as the model read it and what it answered (`SentimentModel.classify`)."""

    text: str  # cut to the character cap: what the model and the cache key saw
    prediction: Prediction  # `truncated` covers the character cap and the tokenizer's cut
    tweet: Resolved | None = None


@dataclass(frozen=True)
class _Input:
    """One instance as the model will see it, and the tweet it came from, if any."""

    text: str  # cut to the character cap
    cut: bool
    tweet: Resolved | None = None


class SentimentModel(Model):
    """Tweet sentiment over KServe v1, v2 REST and v2 gRPC."""

    def __init__(
        self,
        name: str,
        settings: ServingSettings,
        *,
        engine: Engine,
        featurestore: FeatureStore,
        cache: PredictionCache,
        history: UserHistory,
        tweets: TweetResolver,
        explain: ExplainSettings | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        """Every collaborator is built by the composition root (`predictor.app`)."""
        super().__init__(name)
        self.settings = settings
        self.tracing = tracing or Tracing.off()
        # the defaults without reading the environment: only the composition root reads it
        self.explain_settings = explain or ExplainSettings.model_construct()
        self._engine = engine
        self.featurestore = featurestore
        self.cache = cache
        self.history = history
        self.tweets = tweets
        self._batcher: Batcher | None = None
        self.card: ServingCard | None = None
        # Called once the model is ready (routes zero their series then; the model loads
        # after the listeners bind).
        self.on_ready: list[Callable[[], None]] = []

    # --- lifecycle -------------------------------------------------------
    def load(self) -> bool:
        """KServe's data plane calls this when a request finds the model unready.

        Loading happens once, in `load_async`, on the engine's thread; this only
        reports, so a request can never trigger a blocking load on the loop.
        """
        return self.ready

    async def load_async(self) -> None:
        """Load and warm the model on the engine thread, start batching, then turn ready."""
        engine = self._engine
        self.card = await engine.load_and_warm()
        cap = self.settings.batch_size_for(engine.device, engine.precision)
        self._batcher = Batcher(
            engine.run,
            model_name=self.name,
            version=self.card.version,
            max_batch_size=cap,
            max_delay_s=self.settings.max_batch_delay_ms / 1000.0,
            max_queue=self.settings.max_queue_texts,
            length_window=self.settings.batch_length_window * cap,
            tracing=self.tracing,
        )
        self._batcher.start()
        await self.featurestore.start()
        metrics.model_loaded(self.name, self.card.version, engine.device, engine.precision)
        for label in self.card.labels:  # every label's series from the first scrape, at 0
            metrics.PREDICTIONS.labels(self.name, self.version, label)
        metrics.PREDICTION_SCORE.labels(self.name, self.version)
        metrics.READY.labels(self.name).set(1)
        # What load built (torch modules, tokenizer, KServe's app) lives for the whole
        # process: out of the collector's way, so a full collection mid-request stays short.
        gc.collect()
        gc.freeze()
        self.ready = True
        for hook in self.on_ready:
            hook()
        log.info(
            "model %s ready (batch cap %d, delay %.1f ms)",
            self.name,
            self._batcher.max_batch_size,
            self.settings.max_batch_delay_ms,
        )

    def shed(self, message: str) -> int:
        """Answer every text still waiting for the model with 503 `message` (drain ran out)."""
        return self._batcher.shed(message) if self._batcher is not None else 0

    async def drain(self, flush_timeout_s: float) -> None:
        """Stop taking work, finish what is queued, flush write-behind, release the engine."""
        self.ready = False
        metrics.READY.labels(self.name).set(0)
        if self._batcher is not None:
            await self._batcher.close()
        await self.featurestore.close(flush_timeout_s)
        await self.tweets.close()
        await asyncio.get_running_loop().run_in_executor(None, self._engine.shutdown)

    @property
    def version(self) -> str:
        return self.card.version if self.card else "unloaded"

    @property
    def labels(self) -> list[str]:
        if self.card is None:
            raise NotReady(f"model {self.name} is not loaded yet")
        return self.card.labels

    # --- metadata (v2 /v2/models/NAME) ------------------------------------
    def metadata_parameters(self) -> dict[str, str]:
        """What the v2 metadata adds to KServe's fields: the loaded version and how it runs
        (a bf16 and an fp32 pod answer slightly different probabilities)."""
        return {
            "version": self.version,
            "device": self._engine.device,
            "precision": self._engine.precision,
        }

    def get_input_types(self) -> list[dict[str, Any]]:
        return [{"name": TEXT_INPUT, "datatype": "BYTES", "shape": [-1]}]

    def get_output_types(self) -> list[dict[str, Any]]:
        n = len(self.card.labels) if self.card else -1
        return [
            {"name": LABEL_OUTPUT, "datatype": "BYTES", "shape": [-1]},
            {"name": PROBS_OUTPUT, "datatype": "FP32", "shape": [-1, n]},
        ]

    # --- request path ----------------------------------------------------
    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Decoded:
        limit = self.settings.max_instances
        with self.tracing.span("predictor.decode") as span:
            decoded = (
                decode_v2(payload, limit)
                if isinstance(payload, InferRequest)
                else decode_v1(payload, limit)
            )
            if span.is_recording():
                span.set_attributes(
                    {
                        "predictor.protocol": decoded.protocol.value,
                        "predictor.instances": len(decoded.instances),
                    }
                )
            return decoded

    def validate(self, payload: Any) -> Any:
        """Decoding in `preprocess` already validated the request."""
        return payload

    async def predict(
        self, payload: Decoded, headers: dict[str, str] | None = None, *_: Any
    ) -> Answer:
        """KServe's predict hook: every instance through `classify`."""
        return Answer(payload, [c.prediction for c in await self.classify(payload.instances)])

    async def classify(self, instances: Sequence[Instance]) -> list[Classified]:
        """The one path from instances to predictions, for predict and feedback alike: tweets
        resolved and texts cut (`_inputs`), the whole batch looked up at once, only misses to
        the model, and what it computed queued for write-behind once it all succeeded."""
        if self._batcher is None or not self.ready:
            raise NotReady(f"model {self.name} is not ready")
        with self.tracing.span("predictor.classify", {"predictor.instances": len(instances)}):
            return await self._classify(instances, self._batcher)

    async def _classify(self, instances: Sequence[Instance], batcher: Batcher) -> list[Classified]:
        inputs = await self._inputs(instances)
        version, precision = self.version, self._engine.precision
        texts = [i.text for i in inputs]
        if self.tracing.trace_text:
            trace.get_current_span().set_attribute("predictor.texts", texts)
        found = await self.cache.lookup(version, precision, texts)
        todo = list(dict.fromkeys(i.text for i, p in zip(inputs, found, strict=True) if p is None))
        computed: dict[str, Prediction] = {}
        if todo:
            rows = await batcher.submit(todo)
            computed = {t: self._prediction(r) for t, r in zip(todo, rows, strict=True)}
        out: list[Classified] = []
        authored: list[Authored] = []
        for inp, hit in zip(inputs, found, strict=True):
            p = hit or computed[inp.text]
            if inp.cut and not p.truncated:
                p = replace(p, truncated=True)
            tweet = inp.tweet
            if tweet is not None:
                p = replace(p, tweet_id=tweet.tweet.id, author=tweet.tweet.author)
                if tweet.tweet.author and (tweet.fresh or hit is None):
                    authored.append(
                        Authored(tweet.tweet.author, tweet.tweet.id, tweet.tweet.created_at, p)
                    )
            out.append(Classified(inp.text, p, tweet))
        self._count([c.prediction for c in out], found)
        self.cache.remember(version, precision, list(computed.items()))
        self.history.record(version, authored)
        return out

    def _count(self, predictions: list[Prediction], found: list[Prediction | None]) -> None:
        """The prediction series, once per label and request rather than once per text: each
        `labels()` call takes the registry's lock and resolves the version."""
        by_label = Counter(p.label for p in predictions)
        for label, n in by_label.items():
            metrics.PREDICTIONS.labels(self.name, self.version, label).inc(n)
        scores = metrics.PREDICTION_SCORE.labels(self.name, self.version)
        for p in predictions:
            scores.observe(p.score)
        cut = sum(p.truncated and hit is None for p, hit in zip(predictions, found, strict=True))
        if cut:
            metrics.TRUNCATED.labels(self.name, self.version).inc(cut)

    async def explain(self, payload: Decoded, headers: dict[str, str] | None = None) -> Explained:
        """KServe's `:explain` verb (v1): per instance the label `:predict` gives and each
        word's contribution, by occlusion through the shared batcher (`predictor.explain`).
        Fresh forward passes: the cache stores answers, not explanations."""
        if self._batcher is None or not self.ready:
            raise NotReady(f"model {self.name} is not ready")
        inputs = await self._inputs(payload.instances)
        texts = [i.text for i in inputs]
        check_bounds(texts, self.explain_settings)
        explained = await explain_texts(texts, self._batcher.submit, self._prediction)
        out = []
        for inp, e in zip(inputs, explained, strict=True):
            metrics.EXPLAINED_WORDS.labels(self.name, self.version).observe(len(e.words))
            cut = inp.cut and not e.prediction.truncated
            out.append(replace(e, prediction=replace(e.prediction, truncated=True)) if cut else e)
        return Explained(out)

    async def postprocess(
        self, result: Answer | Explained, headers: dict[str, str] | None = None, *_: Any
    ) -> Any:
        if isinstance(result, Explained):
            return result.v1()
        with self.tracing.span("predictor.encode"):
            if result.decoded.protocol is Protocol.V2:
                return encode_v2(
                    result.decoded, result.predictions, self.labels, self.name, self.version
                )
            return encode_v1(result.predictions)

    async def _inputs(self, instances: Sequence[Instance]) -> list[_Input]:
        """Literal texts and fetched tweets, cut to the character cap before the tokenizer
        (and the cache key) sees them."""
        urls = [
            (f"instances[{n}].tweet_url", inst.tweet_url)
            for n, inst in enumerate(instances)
            if inst.text is None and inst.tweet_url is not None
        ]
        resolved: list[Resolved] = []
        if urls:
            with self.tracing.span("predictor.tweets.resolve", {"predictor.tweets": len(urls)}):
                resolved = await self.tweets.resolve(urls)
        tweets = iter(resolved)
        cap = self.settings.max_text_chars
        out: list[_Input] = []
        for inst in instances:
            tweet = next(tweets) if inst.text is None else None
            text = inst.text if tweet is None else tweet.tweet.text
            assert text is not None
            out.append(_Input(text[:cap], len(text) > cap, tweet))
        return out

    def _prediction(self, row: Row) -> Prediction:
        """A computed prediction; `truncated` here is the tokenizer's cut only, so the
        cached value holds for any instance with the same text."""
        labels = self.labels
        best = int(np.argmax(row.probabilities))
        return Prediction(
            label=labels[best],
            score=float(row.probabilities[best]),
            probabilities={lb: float(p) for lb, p in zip(labels, row.probabilities, strict=True)},
            truncated=row.truncated,
        )
