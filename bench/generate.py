"""Generation speed: the paper's loop against the project's step decoder, on one trained model.

    make bench-generate      (python bench/generate.py)

Without --model-dir it first makes one: parses midi_songs/ and trains the `paper` preset
(the paper's network: 100-token windows, LSTM 216/316/316) for a few batches on one
Horovod rank; speed does not depend on how well it learned. Then, on that model, from the
same training window, it times 500 tokens:
- the paper's way: the whole 100-token window through `model.predict` for every token, argmax;
- the project's way: `Decoder` primed with the window once, then one token per step, argmax,
  the state rebuilt from the last window every 32 tokens as generation does (and, for the
  cost of that, once more with the state carried over all 500).
All exclude loading the model. The last line reads `ratio: N.Nx` (the paper's way over the
project's).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LENGTH = 500


def make_model(scratch: Path) -> Path:
    from lstm_composer.launch import job_environment

    submit = [str(Path(sys.executable).parent / "spark-submit"), "--master", "local[1]"]
    environment = job_environment(ROOT / "cluster" / "conf")  # where Spark lives, as make run's jobs are told
    corpus, model_dir = scratch / "corpus", scratch / "model"
    for job in ([str(ROOT / "jobs/parse.py"), "--input", str(ROOT / "midi_songs"), "--output", str(corpus)],
                [str(ROOT / "jobs/train.py"), "--corpus", str(corpus), "--model-dir", str(model_dir), "--preset",
                 "paper", "--epochs", "1", "--steps-per-epoch", "3", "--val-steps", "1", "--num-proc", "1"]):
        done = subprocess.run(submit + job, env=environment, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"{Path(job[0]).name} failed:\n{done.stderr[-2000:]}")
    return model_dir


def paper_way(network, window: np.ndarray, n_vocab: int) -> list[int]:
    """The paper's generation loop, as it wrote it."""
    pattern = list(window)
    output = []
    for _ in range(LENGTH):
        prediction_input = np.reshape(pattern, (1, len(pattern), 1)) / float(n_vocab)
        prediction = network.predict(prediction_input, verbose=0)
        index = int(np.argmax(prediction))
        output.append(index)
        pattern.append(index)
        pattern = pattern[1:len(pattern)]
    return output


def project_way(model, window: np.ndarray, carried: bool = False) -> list[int]:
    from lstm_composer.decoder import Decoder
    from lstm_composer.generate import Sampling, continuation

    decoder = Decoder(model.network, model.config, len(model.vocabulary))
    primed = decoder.prime(window)
    sampling = Sampling(top_k=1, refresh=None) if carried else Sampling(top_k=1)
    generated, _, _ = continuation(decoder, primed, LENGTH, np.random.default_rng(0), sampling, primer=window[:, None])
    return generated[:, 0].tolist()


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, help="a model trained with the paper's scalar input encoding")
    args = parser.parse_args()
    from lstm_composer.generate import Sampling
    from lstm_composer.model_dir import ModelDir
    from lstm_composer.primers import primer_from_corpus

    with tempfile.TemporaryDirectory() as scratch:
        model_dir = args.model_dir or make_model(Path(scratch))
        model = ModelDir(str(model_dir)).load()
        if model.config.input_encoding != "scalar":
            sys.exit(f"{model_dir} was trained with preset {model.config.name}, not the paper's scalar input")
        primer = primer_from_corpus(model.tokens(), model.vocabulary, model.config, np.random.default_rng(0),
                                    model.held_out)
        window = np.array(model.vocabulary.encode(primer.tokens))
        paper_seconds, paper_tokens = timed(paper_way, model.network, window, len(model.vocabulary))
        project_seconds, project_tokens = timed(project_way, model, window)
        carried_seconds, _ = timed(project_way, model, window, True)
    print(f"model: preset {model.config.name}, window {model.config.sequence_length}, "
          f"LSTM {'/'.join(map(str, model.config.lstm_units))}, vocabulary {len(model.vocabulary)}; "
          f"{os.cpu_count()} cores")
    print(f"paper's way (model.predict on the window per token): {LENGTH} tokens in {paper_seconds:.2f} s")
    print(f"project's way (step decoder, state rebuilt every {Sampling().refresh} tokens): {LENGTH} tokens in "
          f"{project_seconds:.3f} s (state carried throughout: {carried_seconds:.3f} s)")
    # From the same window both take the argmax first; after that the paper's window drops its
    # oldest token at every step and the decoder's only at each rebuild, so the pieces may part ways.
    print(f"first token the same: {paper_tokens[0] == project_tokens[0]}; "
          f"tokens the same before they part: {next((i for i, (a, b) in enumerate(zip(paper_tokens, project_tokens)) if a != b), LENGTH)}")
    print(f"ratio: {paper_seconds / project_seconds:.1f}x")


if __name__ == "__main__":
    main()
