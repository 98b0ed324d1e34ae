"""Build the hard development corpus (issue 8): in-band targets under full-band speech; not run in CI.

Every recording is a micmon sample folder (`audio.<ext>` + `labels.json`) built from Debian
packages only (`make bench-deps` installs them; see HARD_PACKAGES). Four tasks, each with a
training side and a test side, plus target-free "room" recordings shared by all tasks:

    OUT/<task>/train/rec_NN      event recordings: a user's afternoon of labelling
    OUT/<task>/test/rec_NN       event recordings, other target instances where the source has them
    OUT/room/train/room_NN       1 h without any target of any task ({"00:00.000": "negative"})
    OUT/room/test/room_NN        2 h without any target: false alarms per hour
    OUT/manifest.json            every recording: side, format, rate, channels, colouring, events

Tasks: `horn` (Wesnoth horn signals), `wolf` (Wesnoth wolf growls, barks and howls, a dog
stand-in), `chime` (a notification chime of lomiri-sounds, a doorbell stand-in) and `creatures`
(six classes: horse, gryphon, bat, goblin, scream, applause). Targets are mixed into a talker
(espeak-ng and flite voices in six languages, full bandwidth) at target-to-speech ratios drawn
uniformly from -10..+10 dB, with other sounds (lookalikes of the target among them, some only on
the test side) every ~12 s. Mixing happens in numpy at 48 kHz; each recording is then coloured
(high-pass, low-pass, a resonance, gain) and encoded by ffmpeg to one of 16 / 22.05 / 44.1 /
48 kHz, mono or stereo, mp3 / wav / flac / ogg.

The output folder is named by a hash of every parameter (and of this file), so a finished corpus
is reused; `--force` rebuilds it.

Example: python bench/hard_corpus.py            # builds bench/out/hard/<hash>, prints a summary
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_corpus import decode  # noqa: E402  (one ffmpeg decoder for both corpora)

RATE = 48000
#: Bump when the generation code changes in a way the parameters do not show.
CORPUS_VERSION = 1
OUT_ROOT = Path(__file__).resolve().parent / "out" / "hard"

WESNOTH = Path("/usr/share/games/wesnoth/1.16/data/core/sounds")
WESNOTH_UI = Path("/usr/share/games/wesnoth/1.16/sounds")
LOMIRI = Path("/usr/share/sounds/lomiri")
YARU = Path("/usr/share/sounds/Yaru/stereo")
DEEPIN = Path("/usr/share/sounds/deepin/stereo")
ICONS = Path("/usr/share/sounds/sound-icons")
PSI = Path("/usr/share/psi-plus/sound")
EISKALT = Path("/usr/share/eiskaltdcpp/sounds")
PINGUS = Path("/usr/share/games/pingus/data/sounds")
FROZEN = Path("/usr/share/games/frozen-bubble/snd")
ETR = Path("/usr/share/games/etr/sounds")

#: Debian packages the corpus reads (all in Debian main), with their sound licences.
HARD_PACKAGES: dict[str, str] = {
    "wesnoth-1.16-data": "GPL-2+",
    "lomiri-sounds": "CC-BY-SA-3.0 (Rhodes.ogg and most notifications), CC-BY-3.0 / CC-BY-4.0",
    "yaru-theme-sound": "CC-BY-SA-4.0",
    "deepin-sound-theme": "GPL-3+",
    "sound-icons": "GPL-2+",
    "psi-plus-sounds": "GPL-2+",
    "eiskaltdcpp-sounds": "GPL-2+ / GPL-3+",
    "pingus-data": "GPL-2",
    "frozen-bubble-data": "GPL-2",
    "extremetuxracer-data": "GPL-2+",
    "espeak-ng": "GPL-3+ (speech synthesiser)",
    "flite": "BSD-style (CMU; speech synthesiser and its voices)",
}
#: Packages whose sounds must never be used (the maintainers' held-out benchmark and the easy one).
FORBIDDEN_PACKAGES = (
    "oxygen-sounds",
    "tuxpaint-data",
    "gcompris-qt-data",
    "asterisk-core-sounds-es",
    "asterisk-core-sounds-es-wav",
    "asterisk-core-sounds-es-gsm",
    "asterisk-core-sounds-es-g722",
    "asterisk-core-sounds-fr",
    "asterisk-core-sounds-fr-wav",
    "asterisk-core-sounds-fr-gsm",
    "asterisk-core-sounds-fr-g722",
    "sound-theme-freedesktop",
    "asterisk-core-sounds-en-wav",
)
#: File names that smell of a telephone ring: never used, whatever the package.
RING_WORDS = ("ring", "phone", "call", "incoming")


def w(*names: str) -> list[Path]:
    """Wesnoth core sounds by name."""
    return [WESNOTH / n for n in names]


@dataclass(frozen=True)
class Task:
    """One detection task: target instances per side, how an event is built, its lookalikes."""

    name: str
    #: class -> (training instances, test instances)
    classes: dict[str, tuple[list[Path], list[Path]]]
    #: calls per event (min, max) and the gap between calls, seconds
    calls: tuple[int, int]
    gap: tuple[float, float]
    lookalikes: list[Path]
    #: lookalikes heard only on the test side
    test_only: list[Path] = field(default_factory=list)


TASKS: dict[str, Task] = {
    "horn": Task(
        "horn",
        {
            "horn": (
                w(
                    "horn-signals/horn-2.ogg",
                    "horn-signals/horn-4.ogg",
                    "horn-signals/horn-5.ogg",
                    "horn-signals/horn-7.ogg",
                ),
                w("horn-signals/horn-3.ogg", "horn-signals/horn-6.ogg"),
            )
        },
        calls=(1, 2),
        gap=(0.4, 1.5),
        lookalikes=[
            ICONS / "trumpet-1.wav",
            ICONS / "pipe.wav",
            ICONS / "violoncello-7.wav",
            *w("fanfare-short.wav", "wail.wav", "wail-sml.wav", "magic-holy-1.ogg"),
            DEEPIN / "desktop-login.wav",
            LOMIRI / "notifications/LowBattery.ogg",
        ],
        test_only=[ICONS / "trumpet-12.wav", *w("wail-long.wav"), DEEPIN / "system-shutdown.wav"],
    ),
    "wolf": Task(
        "wolf",
        {
            "wolf": (
                w(
                    "wolf-growl-1.ogg",
                    "wolf-growl-3.ogg",
                    "wolf-hit-1.ogg",
                    "wolf-hit-3.ogg",
                    "wolf-die-2.ogg",
                    "wolf-die-4.ogg",
                ),
                w("wolf-growl-4.ogg", "wolf-hit-2.ogg", "wolf-die-3.ogg"),
            )
        },
        calls=(2, 6),
        gap=(0.1, 0.7),
        lookalikes=w(
            "troll-hit-1.ogg",
            "troll-hit-2.ogg",
            "troll-die-1.ogg",
            "ogre-hit-1.ogg",
            "ogre-hit-3.ogg",
            "ogre-die-2.ogg",
            "drake-hit-1.ogg",
            "drake-hit-3.ogg",
            "orc-hit-1.ogg",
            "orc-die-1.ogg",
            "groan.wav",
            "ugg.wav",
        ),
        test_only=w("yeti-hit.ogg", "yeti-die.ogg", "tusker-hit.ogg", "tusker-die.ogg", "zombie-attack.wav"),
    ),
    "chime": Task(
        "chime",
        {"chime": ([LOMIRI / "notifications/Rhodes.ogg"], [LOMIRI / "notifications/Rhodes.ogg"])},
        calls=(1, 3),
        gap=(0.2, 1.0),
        lookalikes=[
            LOMIRI / "notifications/A440.ogg",
            LOMIRI / "notifications/Positive.ogg",
            LOMIRI / "notifications/Sintesis.ogg",
            LOMIRI / "notifications/Slick.ogg",
            LOMIRI / "notifications/Blip.ogg",
            LOMIRI / "notifications/Mallet.ogg",
            YARU / "bell.oga",
            YARU / "message.oga",
            YARU / "complete.oga",
            DEEPIN / "message.wav",
            DEEPIN / "complete-print.wav",
            ICONS / "piano-3.wav",
            ICONS / "xylofon.wav",
            ICONS / "glass-water-1.wav",
            ICONS / "chord-7.wav",
        ],
        test_only=[
            LOMIRI / "notifications/Sintonia.ogg",
            LOMIRI / "notifications/Ede.ogg",
            WESNOTH_UI / "bell.wav",
            ICONS / "electric-piano-3.wav",
            DEEPIN / "suspend-resume.wav",
        ],
    ),
    "creatures": Task(
        "creatures",
        {
            "horse": (w("horse-hit-1.ogg", "horse-hit-3.ogg", "horse-die.ogg"), w("horse-hit-2.ogg")),
            "gryphon": (
                w("gryphon-hit-1.ogg", "gryphon-hit-3.ogg", "gryphon-die-1.ogg", "gryphon-shriek-1.ogg"),
                w("gryphon-hit-2.ogg", "gryphon-die-2.ogg", "gryphon-shriek-2.ogg"),
            ),
            "bat": (w("bat-hit-1.ogg", "bat-hit-2.ogg", "bat-hit-4.ogg"), w("bat-hit-3.ogg")),
            "goblin": (
                w("goblin-hit-1.ogg", "goblin-hit-3.ogg", "goblin-die-1.ogg"),
                w("goblin-hit-2.ogg", "goblin-die-2.ogg"),
            ),
            "scream": (
                w(
                    "human-female-hit-1.ogg",
                    "human-female-hit-3.ogg",
                    "human-female-die-1.ogg",
                    "human-female-die-3.ogg",
                ),
                w("human-female-hit-2.ogg", "human-female-die-2.ogg"),
            ),
            "applause": ([FROZEN / "applause.ogg"], [FROZEN / "applause.ogg"]),
        },
        calls=(2, 4),
        gap=(0.1, 0.8),
        lookalikes=w(
            "human-hit-1.ogg",
            "human-die-1.ogg",
            "elf-hit-1.ogg",
            "dwarf-hit-1.ogg",
            "orc-small-hit-1.ogg",
            "naga-hit-2.ogg",
            "mermaid-hit.ogg",
            "lich-hit-1.ogg",
            "wose-hit.ogg",
            "tusker-charge.ogg",
        ),
        test_only=w("human-old-hit-1.ogg", "mermaid-die.ogg", "naga-die.ogg", "dwarf-laugh.wav"),
    ),
}

#: Families of files that are targets of some task (or too close to one): never "other sounds".
TARGET_FAMILIES = (
    "horn-signals/",
    "wolf-",
    "horse-",
    "gryphon-",
    "bat-hit",
    "goblin-",
    "human-female-",
    "applause",
    "notifications/Rhodes",
)

# -- speech -------------------------------------------------------------------------------------
#: (espeak-ng voice or "flite:<voice>", language of the text)
VOICES: tuple[tuple[str, str], ...] = (
    ("en-us+m1", "en"),
    ("en-gb-x-rp+f2", "en"),
    ("en+m3", "en"),
    ("en-us+f4", "en"),
    ("flite:slt", "en"),
    ("flite:awb", "en"),
    ("flite:rms", "en"),
    ("flite:kal16", "en"),
    ("de+m2", "de"),
    ("de+f3", "de"),
    ("fr+m4", "fr"),
    ("fr+f1", "fr"),
    ("es+m1", "es"),
    ("es-419+f2", "es"),
    ("it+f4", "it"),
    ("nl+m3", "nl"),
)
#: Household talk written for this corpus (no sentence is heard on both sides).
TEXTS: dict[str, tuple[str, ...]] = {
    "en": (
        "Could you pass me the salt, please? The soup needs a little more.",
        "I think the train leaves at half past eight tomorrow morning.",
        "Did anyone see where I left my keys? They were on the table a minute ago.",
        "We should call your grandmother on Sunday, she misses the children.",
        "The weather report said it would rain all afternoon, so take an umbrella.",
        "Put the shopping in the fridge before the milk gets warm.",
        "My laptop keeps restarting whenever I open more than three windows.",
        "Let's paint the spare room green, it gets the morning light.",
        "The neighbours are having a party again, can you hear the music?",
        "Remember to water the tomatoes, the soil was completely dry yesterday.",
        "I finished the book last night; the ending was not what I expected.",
        "How much flour goes into the pancakes? I always forget the amount.",
        "The car needs new tyres before we drive to the coast in July.",
        "She said the meeting was moved to Thursday because of the holiday.",
        "Turn the heating down a bit, it is far too warm in here.",
        "Which film do you want to watch tonight, the comedy or the documentary?",
        "Our football team lost again, three goals to one, in the last minute.",
        "Please don't leave your shoes in the hallway, somebody will trip.",
        "I'm going to the bakery; do you want anything for breakfast?",
        "The printer is out of ink again, we bought a cartridge only last month.",
        "Grandpa told the same story about the war at dinner, word for word.",
        "If we leave now we can still catch the last bus into town.",
        "The cat has been sleeping on the washing machine all day long.",
        "I can't find the remote control, check between the sofa cushions.",
        "Tomorrow is recycling day, so the blue bins go out tonight.",
        "Your sister phoned earlier, she wants to borrow the camping tent.",
        "The kids built a castle out of cardboard boxes in the living room.",
        "Mix the eggs with the sugar first, then fold in the flour slowly.",
        "Have you seen the electricity bill? It doubled since last winter.",
        "We could walk along the river if the rain stops before lunch.",
    ),
    "de": (
        "Kannst du bitte das Fenster schliessen, es zieht hier furchtbar.",
        "Morgen fahren wir mit dem Fahrrad zum See, wenn das Wetter hält.",
        "Ich habe vergessen, Brot zu kaufen, der Laden hat schon zu.",
        "Die Kinder spielen im Garten und haben ganz schmutzige Hände.",
        "Wann kommt eigentlich der Handwerker wegen der Heizung vorbei?",
        "Das Abendessen ist gleich fertig, deckst du bitte den Tisch?",
        "Im Radio haben sie gesagt, dass die Autobahn gesperrt ist.",
        "Wir brauchen noch Kartoffeln, Zwiebeln und eine Flasche Milch.",
    ),
    "fr": (
        "Tu as vu mes lunettes? Je les avais posées sur le buffet.",
        "Ce soir on mange chez tes parents, n'oublie pas le gâteau.",
        "Le voisin a encore garé sa voiture devant notre portail.",
        "Il faut arroser les fleurs du balcon avant de partir en vacances.",
        "Les enfants, rangez vos chambres avant de regarder la télévision.",
        "J'ai trouvé une recette de tarte aux pommes très facile.",
        "La réunion de demain commence à neuf heures et demie.",
        "On pourrait aller au marché samedi matin, s'il fait beau.",
    ),
    "es": (
        "Mañana vamos a comer a casa de la abuela, llega temprano.",
        "¿Has visto el cargador del teléfono? Estaba en la cocina.",
        "El autobús siempre llega tarde cuando llueve en la ciudad.",
        "Hay que comprar pan, huevos y un poco de queso para la cena.",
        "Los niños quieren ir a la playa este fin de semana.",
        "La lavadora hace un ruido muy raro desde ayer por la tarde.",
        "Apaga la luz del pasillo cuando salgas, por favor.",
        "Mi hermano empieza un trabajo nuevo el lunes que viene.",
    ),
    "it": (
        "Stasera facciamo la pasta al pomodoro con il basilico dell'orto.",
        "Hai chiuso la porta a chiave prima di uscire stamattina?",
        "Il treno per Milano è in ritardo di venti minuti.",
        "Domenica andiamo in montagna a trovare gli zii.",
        "La bambina ha disegnato un gatto gigante sul muro della camera.",
        "Mi serve una mano a spostare il divano in salotto.",
    ),
    "nl": (
        "Zullen we vanavond pannenkoeken eten met stroop en spek?",
        "De fiets heeft een lekke band, ik moet hem morgen plakken.",
        "Vergeet niet de planten water te geven als wij weg zijn.",
        "Het regent al de hele week, de tuin staat helemaal onder water.",
        "Wie heeft de laatste koek uit de trommel gepakt?",
        "Mijn moeder komt zaterdag op bezoek met haar nieuwe hond.",
    ),
}

#: Output forms a user's recordings come in.
FORMATS = ("mp3", "wav", "flac", "ogg")
RATES = (16000, 22050, 44100, 48000)
CODEC_ARGS: dict[str, list[str]] = {
    "mp3": ["-c:a", "libmp3lame", "-b:a", "128k"],
    "wav": ["-c:a", "pcm_s16le"],
    "flac": ["-c:a", "flac"],
    "ogg": ["-c:a", "libvorbis", "-q:a", "4"],
}


@dataclass(frozen=True)
class Params:
    """Everything that decides the corpus (its hash names the output folder)."""

    seed: int = 0
    event_minutes: float = 3.0
    train_recordings: int = 5
    test_recordings: int = 8
    room_train_minutes: float = 60.0
    room_test_minutes: float = 120.0
    room_piece_minutes: float = 15.0
    #: target-to-speech ratio range, dB (uniform: a quarter of the events below -5 dB)
    snr_db: tuple[float, float] = (-10.0, 10.0)
    #: gap between events, seconds
    event_gap: tuple[float, float] = (10.0, 25.0)
    speech_dbfs: float = -26.0
    speech_jitter_db: float = 3.0
    pause: tuple[float, float] = (0.15, 1.8)
    #: mean seconds between other sounds, their level vs the speech (dB), share of lookalikes
    other_every: float = 12.0
    other_db: tuple[float, float] = (-10.0, 6.0)
    lookalike_share: float = 0.5
    #: share of the remaining pool of other sounds heard only on the test side
    test_only_share: float = 0.2
    noise_dbfs: float = -62.0
    #: microphone colouring: high-pass (Hz), low-pass (Hz), resonance gain (dB), overall gain (dB)
    highpass: tuple[float, float] = (50.0, 300.0)
    lowpass: tuple[float, float] = (3800.0, 16000.0)
    resonance_db: tuple[float, float] = (-6.0, 6.0)
    gain_db: tuple[float, float] = (-12.0, 4.0)

    def digest(self) -> str:
        """A short hash of the parameters, the sources and CORPUS_VERSION (names the folder)."""
        blob = json.dumps(
            [asdict(self), CORPUS_VERSION, repr(TASKS), VOICES, TEXTS, RATE, FORMATS, RATES, CODEC_ARGS],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


# -- audio helpers --------------------------------------------------------------------------------
def trim(x: np.ndarray, floor_db: float = -45.0) -> np.ndarray:
    """Cut leading and trailing audio quieter than `floor_db` below the peak (10 ms frames)."""
    frame = RATE // 100
    n = len(x) // frame
    if n < 2:
        return x
    levels = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1)) + 1e-12
    loud = np.flatnonzero(20 * np.log10(levels / levels.max()) > floor_db)
    return x[loud[0] * frame : (loud[-1] + 1) * frame]


def active_db(x: np.ndarray) -> float:
    """RMS level of the frames within 30 dB of the loudest (10 ms), dBFS."""
    frame = RATE // 100
    n = len(x) // frame
    if n == 0:
        return 20 * float(np.log10(np.sqrt(np.mean(x**2)) + 1e-12))
    levels = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1)) + 1e-12
    loud = levels[levels > levels.max() * 10 ** (-30 / 20)]
    return 20.0 * float(np.log10(np.sqrt(np.mean(loud**2))))


def at_level(x: np.ndarray, dbfs: float) -> np.ndarray:
    """Scale `x` so its active level is `dbfs`."""
    return (x * 10 ** ((dbfs - active_db(x)) / 20)).astype(np.float32)


def stable_hash(text: str) -> int:
    """A hash of `text` that does not change between runs (unlike hash())."""
    return zlib.crc32(text.encode())


def check_not_forbidden(paths: list[Path]) -> None:
    """Exit if any of `paths` belongs to an installed FORBIDDEN_PACKAGES package or is a ring."""
    banned: set[str] = set()
    for pkg in FORBIDDEN_PACKAGES:
        listed = subprocess.run(["dpkg-query", "-L", pkg], capture_output=True, text=True, check=False)
        if listed.returncode == 0:
            banned.update(line.strip() for line in listed.stdout.splitlines())
    bad = [
        str(p)
        for p in paths
        if str(p) in banned or "ringtones" in p.parts or any(word in p.name.lower() for word in RING_WORDS)
    ]
    if bad:
        sys.exit(f"forbidden sources selected: {', '.join(sorted(bad))}")


# -- sources --------------------------------------------------------------------------------------
class Sources:
    """Decoded sounds and speech utterances, split into training and test pools."""

    def __init__(self, params: Params, workdir: Path) -> None:
        self.params = params
        self._cache: dict[Path, np.ndarray] = {}
        self.check()
        others = sorted(p for p in self._pool_files() if not self._is_target(p))
        lookalikes = {p for t in TASKS.values() for p in (*t.lookalikes, *t.test_only)}
        test_only = {p for t in TASKS.values() for p in t.test_only}
        rest = [p for p in others if p not in lookalikes]
        test_only |= {p for p in rest if stable_hash(p.name) % 1000 < params.test_only_share * 1000}
        self.others = {"train": [p for p in others if p not in test_only], "test": others}
        self.test_only = sorted(test_only)
        used = [
            *others,
            *lookalikes,
            *(f for t in TASKS.values() for a, b in t.classes.values() for f in (*a, *b)),
        ]
        check_not_forbidden(used)
        self.speech = self._speech(workdir)

    @staticmethod
    def check() -> None:
        """Exit with the install command when a source package is missing."""
        needed = {
            WESNOTH: "wesnoth-1.16-data",
            LOMIRI: "lomiri-sounds",
            YARU: "yaru-theme-sound",
            DEEPIN: "deepin-sound-theme",
            ICONS: "sound-icons",
            PSI: "psi-plus-sounds",
            EISKALT: "eiskaltdcpp-sounds",
            PINGUS: "pingus-data",
            FROZEN: "frozen-bubble-data",
            ETR: "extremetuxracer-data",
        }
        missing = [pkg for path, pkg in needed.items() if not path.exists()]
        missing += [tool for tool in ("espeak-ng", "flite", "ffmpeg") if not shutil.which(tool)]
        if not missing:
            files = [
                q
                for t in TASKS.values()
                for q in (*t.lookalikes, *t.test_only, *(f for a, b in t.classes.values() for f in (*a, *b)))
            ]
            absent = [str(q) for q in files if not q.exists()]
            if absent:
                sys.exit(f"source files not found (package version changed?): {', '.join(absent)}")
        if missing:
            sys.exit(f"missing sources: apt-get install {' '.join(sorted(set(missing)))}")

    @staticmethod
    def _is_target(path: Path) -> bool:
        text = str(path)
        return any(f in text for f in TARGET_FAMILIES)

    @staticmethod
    def _pool_files() -> list[Path]:
        files: list[Path] = []
        for root in (
            WESNOTH,
            WESNOTH_UI,
            LOMIRI / "notifications",
            LOMIRI / "camera",
            YARU,
            DEEPIN,
            ICONS,
            PSI,
            EISKALT,
            PINGUS,
            FROZEN,
            ETR,
        ):
            files += [p for p in root.rglob("*") if p.suffix in (".ogg", ".oga", ".wav")]
        return [
            p
            for p in files
            if not any(word in p.name.lower() for word in RING_WORDS)
            and "ringtones" not in p.parts
            and "zik" not in p.name
        ]

    def sound(self, path: Path) -> np.ndarray:
        """Return a source sound, decoded once, trimmed, at most 6 s."""
        if path not in self._cache:
            x = trim(decode(path, RATE))
            self._cache[path] = x[: 6 * RATE] if len(x) else np.zeros(RATE // 10, np.float32)
        return self._cache[path]

    def _speech(self, workdir: Path) -> dict[str, list[np.ndarray]]:
        """Synthesise every (voice, sentence) utterance; split by sentence between the sides."""
        pools: dict[str, list[np.ndarray]] = {"train": [], "test": []}
        for v, (voice, lang) in enumerate(VOICES):
            for i, text in enumerate(TEXTS[lang]):
                side = "train" if (i + stable_hash(lang)) % 2 == 0 else "test"
                wav = workdir / f"u{v}_{i}.wav"
                if voice.startswith("flite:"):
                    cmd = ["flite", "-voice", voice.split(":", 1)[1], "-t", text, "-o", str(wav)]
                else:
                    speed = 140 + (stable_hash(f"{voice}{i}") % 50)
                    cmd = ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wav), text]
                subprocess.run(cmd, check=True, capture_output=True)
                x = trim(decode(wav, RATE))
                if len(x) > RATE // 2:
                    pools[side].append(at_level(x, self.params.speech_dbfs))
        return pools


# -- mixing ---------------------------------------------------------------------------------------
def add(out: np.ndarray, x: np.ndarray, at: int) -> int:
    """Add `x` into `out` at sample `at` (clipped to the end); return the end sample."""
    end = min(len(out), at + len(x))
    if end > at:
        out[at:end] += x[: end - at]
    return end


def room(
    seconds: float, src: Sources, side: str, rng: np.random.Generator, lookalikes: list[Path] | None = None
) -> tuple[np.ndarray, list[dict]]:
    """Return `seconds` of a talker, other sounds now and then, and a noise floor."""
    p = src.params
    n = int(seconds * RATE)
    out = (10 ** (p.noise_dbfs / 20) * rng.standard_normal(n)).astype(np.float32)
    utterances = src.speech[side]
    pos = int(rng.uniform(0, 1.5) * RATE)
    while pos < n:
        x = utterances[rng.integers(len(utterances))]
        pos = add(out, x * np.float32(10 ** (rng.uniform(-1, 1) * p.speech_jitter_db / 20)), pos)
        pos += int(rng.uniform(*p.pause) * RATE)
    others = src.others[side]
    looks = [q for q in lookalikes or [] if side == "test" or q not in src.test_only]
    heard = []
    t = rng.exponential(p.other_every)
    while t < seconds:
        pool = looks if looks and rng.random() < p.lookalike_share else others
        path = pool[rng.integers(len(pool))]
        x = at_level(src.sound(path), p.speech_dbfs + rng.uniform(*p.other_db))
        add(out, x, int(t * RATE))
        heard.append(
            {
                "t": round(t, 2),
                "seconds": round(len(x) / RATE, 3),
                "sound": str(path),
                "lookalike": path in (lookalikes or []),
            }
        )
        t += len(x) / RATE + rng.exponential(p.other_every)
    return out, heard


def event(
    task: Task, label: str, src: Sources, side: str, rng: np.random.Generator
) -> tuple[np.ndarray, list[str]]:
    """Return one event of `label` (a few calls of its instances on this side) and the files used."""
    train, test = task.classes[label]
    instances = train if side == "train" else test
    pieces: list[np.ndarray] = []
    used = []
    for k in range(int(rng.integers(task.calls[0], task.calls[1] + 1))):
        path = instances[rng.integers(len(instances))]
        used.append(path.name)
        if k:
            pieces.append(np.zeros(int(rng.uniform(*task.gap) * RATE), np.float32))
        pieces.append(src.sound(path))
    return np.concatenate(pieces), used


def event_recording(
    task: Task, src: Sources, side: str, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, str], list[dict], list[dict]]:
    """Return audio, labels, events and other sounds of one event recording."""
    p = src.params
    seconds = p.event_minutes * 60
    x, heard = room(seconds, src, side, rng, lookalikes=[*task.lookalikes, *task.test_only])
    labels = {"00:00.000": "negative"}
    events = []
    names = sorted(task.classes)
    t = rng.uniform(4.0, 12.0)
    while True:
        label = names[rng.integers(len(names))]
        y, used = event(task, label, src, side, rng)
        if t + len(y) / RATE > seconds - 2.0:
            break
        snr = float(rng.uniform(*p.snr_db))
        # every call of the event at the same level: the ratio is per call, vs the talker's level
        y = y * np.float32(10 ** ((p.speech_dbfs + snr - active_db(y)) / 20))
        a = int(t * RATE)
        add(x, y, a)
        start, end = a / RATE, (a + len(y)) / RATE
        labels[fmt(start)] = label
        labels[fmt(end)] = "negative"
        events.append(
            {
                "label": label,
                "start": round(start, 3),
                "end": round(end, 3),
                "snr_db": round(snr, 2),
                "instances": used,
            }
        )
        t = end + rng.uniform(*p.event_gap)
    return x, labels, events, heard


def fmt(seconds: float) -> str:
    """Return "HH:MM:SS.fff"."""
    ms = int(round(seconds * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


# -- encoding -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Form:
    """How one recording is delivered: container, rate, channels, microphone colouring."""

    format: str
    rate: int
    channels: int
    highpass: float
    lowpass: float
    resonance_hz: float
    resonance_db: float
    gain_db: float


def forms(count: int, params: Params, rng: np.random.Generator) -> list[Form]:
    """Return `count` forms: formats in turn, each with its own shuffled rates and channel counts."""
    combos = {f: [(r, c) for r in RATES for c in (1, 2)] for f in FORMATS}
    for f in FORMATS:
        order = rng.permutation(len(combos[f]))
        combos[f] = [combos[f][k] for k in order]
    start = int(rng.integers(len(FORMATS)))
    out = []
    for j in range(count):
        fmt_ = FORMATS[(start + j) % len(FORMATS)]
        rate, channels = combos[fmt_][(j // len(FORMATS)) % len(combos[fmt_])]
        lowpass = float(min(rng.uniform(*params.lowpass), 0.45 * rate))
        out.append(
            Form(
                fmt_,
                rate,
                channels,
                round(float(rng.uniform(*params.highpass)), 1),
                round(lowpass, 1),
                round(float(rng.uniform(600, 3500)), 1),
                round(float(rng.uniform(*params.resonance_db)), 1),
                round(float(rng.uniform(*params.gain_db)), 1),
            )
        )
    return out


def encode(folder: Path, x: np.ndarray, form: Form, rng: np.random.Generator) -> Path:
    """Colour `x` like a microphone and encode it to folder/audio.<format>; return the file."""
    folder.mkdir(parents=True, exist_ok=True)
    peak = float(np.max(np.abs(x))) or 1.0
    gain = 10 ** (form.gain_db / 20)
    x = x * np.float32(min(gain, 0.5 / peak))  # headroom for the resonance boost
    if form.channels == 2:
        delay = int(rng.integers(0, 24))
        right = np.roll(x, delay) * np.float32(10 ** (rng.uniform(-3, 3) / 20))
        right = right + (10 ** (-70 / 20) * rng.standard_normal(len(x))).astype(np.float32)
        x = np.stack([x, right], axis=1)
    target = folder / f"audio.{form.format}"
    chain = (
        f"highpass=f={form.highpass},lowpass=f={form.lowpass},"
        f"equalizer=f={form.resonance_hz}:t=o:w=1:g={form.resonance_db}"
    )
    cmd = [
        "ffmpeg",
        "-v",
        "error",
        "-nostdin",
        "-y",
        "-threads",
        "1",
        "-f",
        "f32le",
        "-ar",
        str(RATE),
        "-ac",
        str(form.channels),
        "-i",
        "pipe:0",
        "-af",
        chain,
        "-ar",
        str(form.rate),
        *CODEC_ARGS[form.format],
        str(target),
    ]
    subprocess.run(cmd, input=np.ascontiguousarray(x, dtype=np.float32).tobytes(), check=True)
    return target


def write_labels(folder: Path, labels: dict[str, str]) -> None:
    """Write labels.json."""
    (folder / "labels.json").write_text(json.dumps(labels, indent=1) + "\n", encoding="utf-8")


# -- the corpus -----------------------------------------------------------------------------------
def build(params: Params, out: Path, log: Callable[[str], None] = print) -> dict:
    """Build the corpus into `out` (a fresh folder); return its manifest."""
    rng = np.random.default_rng(params.seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        src = Sources(params, Path(tmp))
    log(
        f"sources: {len(src.speech['train'])} + {len(src.speech['test'])} utterances, "
        f"{len(src.others['test'])} other sounds ({len(src.test_only)} test-only)"
    )
    manifest: dict = {
        "params": asdict(params),
        "digest": params.digest(),
        "rate": RATE,
        "packages": HARD_PACKAGES,
        "tasks": {},
        "room": {"train": [], "test": []},
        "other_sounds": [str(p) for p in src.others["test"]],
        "test_only_sounds": [str(p) for p in src.test_only],
    }
    for task in TASKS.values():
        entry: dict = {
            "labels": sorted(task.classes),
            "train": [],
            "test": [],
            "instances": {
                c: {"train": [p.name for p in a], "test": [p.name for p in b]}
                for c, (a, b) in task.classes.items()
            },
            "lookalikes": [str(p) for p in task.lookalikes],
            "test_only_lookalikes": [str(p) for p in task.test_only],
        }
        for side, count in (("train", params.train_recordings), ("test", params.test_recordings)):
            for i, form in enumerate(forms(count, params, rng)):
                x, labels, events, heard = event_recording(task, src, side, rng)
                folder = out / task.name / side / f"rec_{i + 1:02d}"
                audio = encode(folder, x, form, rng)
                write_labels(folder, labels)
                entry[side].append(
                    {
                        "path": str(folder.relative_to(out)),
                        "file": audio.name,
                        "seconds": params.event_minutes * 60,
                        **asdict(form),
                        "events": events,
                        "other_sounds": len(heard),
                        "lookalikes": sum(h["lookalike"] for h in heard),
                    }
                )
        manifest["tasks"][task.name] = entry
        log(
            f"{task.name}: {sum(len(r['events']) for r in entry['train'])} training events, "
            f"{sum(len(r['events']) for r in entry['test'])} test events "
            f"({time.perf_counter() - started:.0f} s)"
        )
    test_only = set(manifest["test_only_sounds"])
    for side, minutes in (("train", params.room_train_minutes), ("test", params.room_test_minutes)):
        pieces = int(np.ceil(minutes / params.room_piece_minutes))
        for i, form in enumerate(forms(pieces, params, rng)):
            x, heard = room(params.room_piece_minutes * 60, src, side, rng)
            folder = out / "room" / side / f"room_{i + 1:02d}"
            audio = encode(folder, x, form, rng)
            write_labels(folder, {"00:00.000": "negative"})
            manifest["room"][side].append(
                {
                    "path": str(folder.relative_to(out)),
                    "file": audio.name,
                    "seconds": params.room_piece_minutes * 60,
                    **asdict(form),
                    "events": [],
                    "other_sounds": len(heard),
                    "distinct_other_sounds": len({h["sound"] for h in heard}),
                    # where each other sound falls: what a false alarm on this recording overlaps
                    "sounds": [
                        {
                            "t": h["t"],
                            "seconds": h["seconds"],
                            "sound": h["sound"],
                            "test_only": h["sound"] in test_only,
                        }
                        for h in heard
                    ],
                }
            )
        log(f"room/{side}: {minutes:g} min ({time.perf_counter() - started:.0f} s)")
    manifest["build_seconds"] = round(time.perf_counter() - started, 1)
    return manifest


def summary(manifest: dict) -> str:
    """Return a human-readable summary of a manifest."""
    lines = [f"hard corpus {manifest['digest']} (built in {manifest.get('build_seconds', '?')} s)"]
    snrs: list[float] = []
    fmts: Counter[str] = Counter()
    for name, entry in manifest["tasks"].items():
        for side in ("train", "test"):
            recs = entry[side]
            events = [e for r in recs for e in r["events"]]
            snrs += [e["snr_db"] for e in events]
            per_label = Counter(e["label"] for e in events)
            fmts.update(f"{r['format']}/{r['rate']}/{r['channels']}ch" for r in recs)
            minutes = sum(r["seconds"] for r in recs) / 60
            counts = ", ".join(f"{k} {v}" for k, v in sorted(per_label.items()))
            lines.append(
                f"  {name:9s} {side:5s}: {len(recs)} recordings, {minutes:.0f} min, "
                f"{len(events)} events ({counts}), "
                f"{sum(r['lookalikes'] for r in recs)} lookalike sounds"
            )
    for side in ("train", "test"):
        recs = manifest["room"][side]
        fmts.update(f"{r['format']}/{r['rate']}/{r['channels']}ch" for r in recs)
        lines.append(
            f"  room      {side:5s}: {len(recs)} recordings, "
            f"{sum(r['seconds'] for r in recs) / 3600:.2f} h without any target"
        )
    arr = np.asarray(snrs)
    lines.append(
        f"  target-to-speech ratio: {arr.min():.1f}..{arr.max():.1f} dB, median "
        f"{np.median(arr):.1f}, {np.mean(arr < -5):.0%} of {len(arr)} events below -5 dB"
    )
    lines.append(
        f"  other sounds: {len(manifest['other_sounds'])} distinct "
        f"({len(manifest['test_only_sounds'])} test-only)"
    )
    lines.append("  forms: " + ", ".join(f"{k} x{v}" for k, v in sorted(fmts.items())))
    return "\n".join(lines)


def corpus(
    params: Params | None = None,
    *,
    root: Path = OUT_ROOT,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> Path:
    """Return the folder of the corpus for `params`, building it first unless already complete."""
    params = params or Params()
    out = root / params.digest()
    if (out / "manifest.json").exists() and not force:
        return out
    if out.exists():
        shutil.rmtree(out)
    manifest = build(params, out, log)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return out


def main(argv: list[str] | None = None) -> None:
    """Build (or find) the corpus and print its summary."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", type=Path, default=OUT_ROOT, help="parent folder of corpora")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="rebuild an existing corpus")
    p.add_argument(
        "--small", action="store_true", help="a quick smoke-test corpus (fewer, shorter recordings)"
    )
    args = p.parse_args(argv)
    params = Params(seed=args.seed)
    if args.small:
        params = Params(
            seed=args.seed,
            event_minutes=1.0,
            train_recordings=3,
            test_recordings=4,
            room_train_minutes=4.0,
            room_test_minutes=4.0,
            room_piece_minutes=2.0,
        )
    out = corpus(params, root=args.root, force=args.force)
    print(out)
    print(summary(json.loads((out / "manifest.json").read_text())))


if __name__ == "__main__":
    main()
