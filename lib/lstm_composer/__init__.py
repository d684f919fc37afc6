"""lstm-composer: MIDI → tokens on Spark, a stacked LSTM trained with Horovod on Spark, new music out.

Importing the package registers its Keras layer (`model.Pointer`), so that plain Keras opens a
model directory's `model.keras`: at once when TensorFlow is already imported, otherwise as soon
as it is. The package itself never imports TensorFlow: the parse job's executors, which never
need it, would pay 2.5 s and 300 MB for it in every Python worker.
"""
import importlib.abc
import importlib.util
import sys


class _RegisterLayersAfterTensorFlow(importlib.abc.MetaPathFinder):
    """Wraps the loader of `tensorflow` so that, once TensorFlow has loaded, `lstm_composer.model`
    is imported too (defining and registering its layers)."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # the real finders answer, once
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is not None and spec.loader is not None:
            spec.loader = _ThenRegister(spec.loader)
        return spec


class _ThenRegister(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        _register_layers()

    def __getattr__(self, name):  # anything else a loader is asked: the real one's
        return getattr(self.loader, name)


def _register_layers() -> None:
    for finder in [f for f in sys.meta_path if isinstance(f, _RegisterLayersAfterTensorFlow)]:
        sys.meta_path.remove(finder)
    import lstm_composer.model  # noqa: F401


if "tensorflow" in sys.modules:
    _register_layers()
else:
    sys.meta_path.insert(0, _RegisterLayersAfterTensorFlow())
