"""Probe: does a pretrained speech embedding rank the hard benchmark's windows better than micmon's CNN?

Not part of `micmon` and not a candidate default: a one-off measurement for issue 8. It embeds
every recording with a frozen speech-embedding network (Google's speech_embedding, 96 values every
80 ms from 0.76 s of 32-band mel frames, as openWakeWord 0.5.1 ships it in TFLite form, Apache-2.0),
pools each 2 s window's embeddings (mean and max), fits a small head on the training side (linear,
and one hidden layer of 64) and prints the test side's window average precision and best F1, as
`hard_bench.py` computes them (test events + test room, a window every 0.5 s).

Get the two networks once (pip only; the package is not installed, nor its dependencies):

    .venv/bin/pip download openwakeword==0.5.1 --no-deps -d /tmp/oww
    unzip -q /tmp/oww/openwakeword-0.5.1-py3-none-any.whl -d /tmp/oww/w
    .venv/bin/python bench/embedding_probe.py --models /tmp/oww/w/openwakeword/resources/models --task wolf

Each recording's embeddings are cached under --cache (the room recordings are shared by the tasks).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hard_bench as hb  # noqa: E402

SAMPLE_RATE = 16000
WINDOW = 2.0
STEP = 0.5
MEL_HOP = 160  # samples between mel frames (10 ms)
EMB_FRAMES = 76  # mel frames per embedding (0.76 s)
EMB_STEP = 8  # mel frames between embeddings (80 ms)


class Embedder:
    """The two frozen TFLite networks: audio -> mel frames -> 96-value embeddings."""

    def __init__(self, models: Path) -> None:
        from micmon.model.runtime import LiteRTRunner, runtime

        # the mel network's input is a whole length of audio (both dimensions free), which
        # LiteRTRunner's fixed window shape cannot take; the embedding network's is a batch of windows
        self.mel = runtime().interpreter(model_path=str(models / "melspectrogram.tflite"), num_threads=1)
        self.emb = LiteRTRunner(models / "embedding_model.tflite")

    def _mel(self, audio: np.ndarray) -> np.ndarray:
        index = self.mel.get_input_details()[0]["index"]
        self.mel.resize_tensor_input(index, [1, len(audio)])
        self.mel.allocate_tensors()
        self.mel.set_tensor(index, audio[None, :].astype(np.float32))
        self.mel.invoke()
        return np.asarray(self.mel.get_tensor(self.mel.get_output_details()[0]["index"]))[0, 0]

    def embed(self, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (embeddings (E, 96), their start times in seconds) of int16-range mono audio."""
        chunk = MEL_HOP * 1000  # 10 s of mel frames at a time
        mels = []
        for start in range(0, len(audio), chunk):
            piece = audio[start : start + chunk + 3 * MEL_HOP]
            if len(piece) < 4 * MEL_HOP:
                break
            mel = self._mel(piece) / 10.0 + 2.0
            mels.append(mel[: chunk // MEL_HOP])
        frames = np.concatenate(mels)
        starts = np.arange(0, len(frames) - EMB_FRAMES + 1, EMB_STEP)
        out = []
        for b in range(0, len(starts), 512):  # a block of windows at a time: bounded memory
            block = np.stack([frames[p : p + EMB_FRAMES] for p in starts[b : b + 512]])[..., None]
            out.append(self.emb(block).reshape(len(block), 96))
        return np.concatenate(out), starts * MEL_HOP / SAMPLE_RATE


def recording(folder: Path, embedder: Embedder, cache: Path) -> dict[str, Any]:
    """Return one sample folder's window times and labels (every STEP s) and its embeddings, cached."""
    from micmon.audio import AudioDirectory, AudioFile

    key = cache / (str(Path(folder).resolve()).replace("/", "_") + ".npz")
    if key.exists():
        z = np.load(key, allow_pickle=True)
        return {k: z[k] for k in z.files}
    times, labels, parts = [], [], []
    last = np.zeros(0)
    with AudioFile(
        AudioDirectory(folder), window_seconds=WINDOW, sample_rate=SAMPLE_RATE, channels=1, hop=STEP
    ) as source:
        for seg in source:
            times.append(seg.start)
            labels.append(seg.label)
            last = np.asarray(seg.audio).reshape(-1)
            parts.append(last[: int(STEP * SAMPLE_RATE)])
    parts[-1] = last  # the last window whole: the audio, once, to its last window's end
    emb, etimes = embedder.embed(np.concatenate(parts))
    data = {
        "times": np.array(times),
        "labels": np.array(labels, dtype=object),
        "emb": emb,
        "etimes": etimes,
    }
    np.savez(key, **data)
    return data


def windows(
    folders: list[Path], hop: float, embedder: Embedder, cache: Path
) -> list[tuple[Path, list[Any], np.ndarray]]:
    """Return per folder (folder, window labels, pooled embeddings) for windows every `hop` s."""
    out = []
    for folder in folders:
        rec = recording(folder, embedder, cache)
        keep = [i for i, t in enumerate(rec["times"]) if abs(t / hop - round(t / hop)) < 1e-6]
        emb, etimes = rec["emb"], rec["etimes"]
        pooled = []
        span = EMB_FRAMES * MEL_HOP / SAMPLE_RATE
        for t in rec["times"][keep]:  # the embeddings that lie wholly inside the window
            lo = int(np.searchsorted(etimes, t - 1e-6))
            hi = int(np.searchsorted(etimes, t + WINDOW - span + 1e-6, side="right"))
            e = emb[lo:hi] if hi > lo else emb[[min(lo, len(emb) - 1)]]
            pooled.append(np.concatenate([e.mean(0), e.max(0)]))
        out.append((folder, [rec["labels"][i] for i in keep], np.array(pooled)))
    return out


class Head:
    """Softmax regression or a one-hidden-layer network, class-balanced, fitted with Adam."""

    def __init__(self, x: np.ndarray, y: np.ndarray, classes: int, hidden: int, l2: float, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.mu, self.sd = x.mean(0), x.std(0) + 1e-6
        z = (x - self.mu) / self.sd
        self.p: dict[str, np.ndarray] = {"b": np.zeros(classes)}
        if hidden:
            self.p["W1"] = rng.normal(0, 1 / np.sqrt(z.shape[1]), (z.shape[1], hidden))
            self.p["b1"] = np.zeros(hidden)
            self.p["W"] = rng.normal(0, 1 / np.sqrt(hidden), (hidden, classes))
        else:
            self.p["W"] = np.zeros((z.shape[1], classes))
        weight = (len(y) / (classes * np.bincount(y, minlength=classes)))[y]
        onehot = np.eye(classes)[y]
        m = {k: np.zeros_like(v) for k, v in self.p.items()}
        v = {k: np.zeros_like(v) for k, v in self.p.items()}
        for _ in range(60):
            order = rng.permutation(len(y))
            for s in range(0, len(y), 128):
                b = order[s : s + 128]
                h, pre = self._hidden(z[b])
                g = (self._softmax(h @ self.p["W"] + self.p["b"]) - onehot[b]) * weight[b][:, None] / len(b)
                grads = {"W": h.T @ g + l2 * self.p["W"], "b": g.sum(0)}
                if hidden:
                    gh = (g @ self.p["W"].T) * (pre > 0)
                    grads["W1"] = z[b].T @ gh + l2 * self.p["W1"]
                    grads["b1"] = gh.sum(0)
                for k in self.p:
                    m[k] = 0.9 * m[k] + 0.1 * grads[k]
                    v[k] = 0.999 * v[k] + 0.001 * grads[k] ** 2
                    self.p[k] -= 3e-3 * m[k] / (np.sqrt(v[k]) + 1e-8)

    def _hidden(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if "W1" not in self.p:
            return z, z
        pre = z @ self.p["W1"] + self.p["b1"]
        return np.maximum(pre, 0), pre

    @staticmethod
    def _softmax(logits: np.ndarray) -> np.ndarray:
        e = np.exp(logits - logits.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    def scores(self, x: np.ndarray) -> np.ndarray:
        """Return class probabilities, shape (N, classes)."""
        h, _ = self._hidden((x - self.mu) / self.sd)
        return self._softmax(h @ self.p["W"] + self.p["b"])


def main() -> None:
    """Print the probe's window ranking figures for one task and split."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--models", type=Path, required=True, help="folder with melspectrogram/embedding_model.tflite"
    )
    p.add_argument("--task", default="wolf")
    p.add_argument("--seed", type=int, default=7, help="the split (as hard_bench's --seeds)")
    p.add_argument("--corpus", type=Path, default=None, help="corpus folder (default: build/reuse)")
    p.add_argument("--cache", type=Path, default=Path("bench/out/embedding-cache"))
    args = p.parse_args()
    corpus = args.corpus or hb.hard_corpus.corpus(log=hb.log)
    args.cache.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    embedder = Embedder(args.models)
    folders = hb.recordings(corpus, args.task, args.seed, hb.options("default"))
    fitted = windows(folders["fit_events"], STEP, embedder, args.cache)
    fitted += windows(folders["fit_room"], WINDOW, embedder, args.cache)
    x = np.concatenate([w for _, _, w in fitted])
    y_names = [label for _, labels, _ in fitted for label in labels]
    keep = np.array([label is not None for label in y_names])
    classes = sorted({label for label in y_names if label is not None}, key=lambda c: (c != hb.BACKGROUND, c))
    y = np.array([classes.index(label) for label in y_names if label is not None])
    targets = [c for c in classes if c != hb.BACKGROUND]
    tested = windows(list(folders["test_events"]) + list(folders["room_test"]), STEP, embedder, args.cache)
    print(f"{args.task} split {args.seed}: {len(y)} training windows, {time.perf_counter() - started:.0f} s")
    for name, hidden, l2 in (("linear", 0, 1e-2), ("hidden-64", 64, 1e-3)):
        head = Head(x[keep], y, len(classes), hidden, l2, args.seed)
        scored = [
            SimpleNamespace(labels=tuple(classes), scores=head.scores(w), truth=list(labels))
            for _, labels, w in tested
        ]
        print(f"  {name}: {hb.window_ranking(scored, targets)}")


if __name__ == "__main__":
    main()
