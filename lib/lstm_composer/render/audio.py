"""A MIDI file → a WAV, through the `fluidsynth` command and a General MIDI soundfont."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from lstm_composer.render.output import prepared

SOUNDFONTS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/default.sf2",
)
# fluidsynth's default gain (0.2) leaves a piano at about -24 dBFS; 0.5 keeps twelve
# fortissimo voices at once below full scale.
_AUDIO_GAIN = 0.5
AUDIO_INSTALL_HINT = "run `make audio-deps` (Debian packages: fluidsynth fluid-soundfont-gm)"


class AudioUnavailable(Exception):
    """No WAV could be rendered; the message says what is missing and how to get it."""


def write_audio(midi_path: str | Path, wav_path: str | Path, soundfont: str | None = None) -> Path:
    """Render a MIDI file to a 44.1 kHz WAV with the `fluidsynth` command and a GM soundfont.

    Without `soundfont`, the first of `SOUNDFONTS` that exists is used.
    """
    fluidsynth = shutil.which("fluidsynth")
    if fluidsynth is None:
        raise AudioUnavailable(f"the `fluidsynth` command is not on PATH: {AUDIO_INSTALL_HINT}")
    if soundfont is None:
        soundfont = next((sf for sf in SOUNDFONTS if Path(sf).is_file()), None)
        if soundfont is None:
            raise AudioUnavailable(f"no General MIDI soundfont found (looked for {', '.join(SOUNDFONTS)}): "
                                   f"{AUDIO_INSTALL_HINT}, or pass a .sf2 file")
    elif not Path(soundfont).is_file():
        raise AudioUnavailable(f"soundfont {soundfont} does not exist")
    with open(soundfont, "rb") as header:
        riff = header.read(12)
    if riff[:4] != b"RIFF" or riff[8:12] != b"sfbk":  # fluidsynth would render silence without one
        raise AudioUnavailable(f"{soundfont} is not a SoundFont 2 (.sf2) file")
    wav_path = prepared(wav_path)
    wav_path.unlink(missing_ok=True)
    command = [fluidsynth, "-ni", "-q", "-g", str(_AUDIO_GAIN), "-T", "wav", "-F", str(wav_path),
               "-r", "44100", str(soundfont), str(midi_path)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip()[-800:]
        raise AudioUnavailable(f"fluidsynth failed (exit {result.returncode}) on {midi_path}: {tail}")
    if not wav_path.is_file() or wav_path.stat().st_size <= 44:  # a WAV header and no samples
        tail = result.stderr.strip()[-800:]
        raise AudioUnavailable(f"fluidsynth wrote no audio to {wav_path} from {midi_path}: {tail}")
    return wav_path
