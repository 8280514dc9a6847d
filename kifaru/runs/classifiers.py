"""Who runs a run's classifier: this process (a local run), or actors on the Ray cluster
(``--backend ray``: :class:`kifaru.runs.ray_backend.RayClassifiers`, one per GPU, else one per node).

Both take batches of loaded items and give each item back with its result: ``submit(batch)``,
then ``completed(wait)``, which returns the items classified since the last call (``wait``: all of
those submitted). What a command brings:

- ``load(device)``: its classifier on ``device`` ("cpu", "cuda"), loaded once per actor;
- ``classify(classifier, inputs)``: one result per input (probabilities, or the reason there are
  none: one bad input never costs the batch);
- ``inputs_of(loaded)``: what of a loaded item the classifier takes (a clip's frames, a photo's crops).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

Load = Callable[[str], Any]
Classify = Callable[[Any, list[Any]], list[Any]]
InputsOf = Callable[[Any], Any]


class ClassifierHere:
    """The classifier in this process: a batch is classified as it is submitted."""

    def __init__(self, classifier: Any, classify: Classify, inputs_of: InputsOf) -> None:
        self.classifier = classifier
        self.classify = classify
        self.inputs_of = inputs_of
        self.num_frames = getattr(classifier, "num_frames", None)
        self.runtime_choice = getattr(classifier, "runtime_choice", None)
        self._done: list[tuple[Any, Any]] = []

    def submit(self, batch: list[Any]) -> None:
        self._done.extend(zip(batch, self.classify(self.classifier, [self.inputs_of(loaded) for loaded in batch])))

    def completed(self, wait: bool = False) -> list[tuple[Any, Any]]:
        """The items classified since the last call, each with its result."""
        done, self._done = self._done, []
        return done

    def __enter__(self) -> "ClassifierHere":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


def classifiers_for(
    backend: str,
    load: Load,
    classify: Classify,
    inputs_of: InputsOf,
    *,
    device: str,
    model_class: str,
    ray_address: Optional[str] = None,
    use_gpus: bool = True,
) -> Any:
    """The classifier here on ``device``, or in actors on the Ray cluster (``backend`` "ray"),
    which say where they run (a notice) once they are loaded."""
    if backend == "ray":
        from kifaru.notices import notify
        from kifaru.runs.ray_backend import RayClassifiers

        classifiers = RayClassifiers(load, classify, inputs_of, model_class, ray_address, use_gpus=use_gpus)
        notify(f"classifier: {classifiers.describe()}")
        return classifiers
    return ClassifierHere(load(device), classify, inputs_of)
