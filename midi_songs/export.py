"""Regenerate the bundled corpus: export works from music21's own corpus to MIDI.

    make songs        (runs: python midi_songs/export.py --output midi_songs)

Late-romantic and 20th-century works first, piano where the corpus has it, then other
music to reach a corpus worth training on. The same music21 version gives the same bytes.
"""
import argparse
from pathlib import Path

# (music21 corpus path, file name, what it is)
WORKS = [
    ("schoenberg/opus19/movement2.mxl", "schoenberg_op19_no2.mid", "Schoenberg, Six Little Piano Pieces op. 19, no. 2 (1911)"),
    ("schoenberg/opus19/movement6.mxl", "schoenberg_op19_no6.mid", "Schoenberg, Six Little Piano Pieces op. 19, no. 6 (1911)"),
    ("joplin/maple_leaf_rag.mxl", "joplin_maple_leaf_rag.mid", "Joplin, Maple Leaf Rag, piano (1899)"),
    ("leadSheet/berlinAlexandersRagtime.mxl", "berlin_alexanders_ragtime_band.mid", "Berlin, Alexander's Ragtime Band, lead sheet (1911)"),
    ("webern/webern_dormi_jesu_op_16_no_2.mxl", "webern_op16_no2.mid", "Webern, Five Canons op. 16, no. 2 'Dormi Jesu' (1924)"),
    ("beach/prayer_of_a_tired_child.musicxml", "beach_prayer_of_a_tired_child.mid", "Amy Beach, Prayer of a Tired Child, voice and piano"),
    ("johnson_j_r/lift_every_voice.mxl", "johnson_lift_every_voice.mid", "J. Rosamond Johnson, Lift Every Voice and Sing (1900)"),
    ("liliuokalani/aloha_oe.mxl", "liliuokalani_aloha_oe.mid", "Liliuokalani, Aloha 'Oe (1878)"),
    ("schumann_clara/polonaise_op1n1.mxl", "clara_schumann_polonaise_op1_no1.mid", "Clara Schumann, Polonaise op. 1 no. 1, piano"),
    ("schumann_clara/polonaise_op1n2.mxl", "clara_schumann_polonaise_op1_no2.mid", "Clara Schumann, Polonaise op. 1 no. 2, piano"),
    ("schumann_clara/polonaise_op1n3.mxl", "clara_schumann_polonaise_op1_no3.mid", "Clara Schumann, Polonaise op. 1 no. 3, piano"),
    ("schumann_clara/polonaise_op1n4.mxl", "clara_schumann_polonaise_op1_no4.mid", "Clara Schumann, Polonaise op. 1 no. 4, piano"),
    ("schumann_clara/opus17/movement3.xml", "clara_schumann_trio_op17_mvt3.mid", "Clara Schumann, Piano Trio op. 17, third movement"),
    ("schumann_robert/dichterliebe_no2.xml", "schumann_dichterliebe_no2.mid", "Robert Schumann, Dichterliebe op. 48 no. 2, voice and piano"),
    ("chopin/mazurka06-2.krn", "chopin_mazurka_op6_no2.mid", "Chopin, Mazurka op. 6 no. 2, piano"),
    ("schubert/Lindenbaum.xml", "schubert_der_lindenbaum.mid", "Schubert, Der Lindenbaum (Winterreise), voice and piano"),
    ("mozart/k545/movement1_exposition.mxl", "mozart_k545_mvt1_exposition.mid", "Mozart, Piano Sonata K. 545, first movement, exposition"),
    ("cpebach/h186.mxl", "cpe_bach_h186.mid", "C. P. E. Bach, keyboard piece H. 186"),
    ("bach/bwv846.mxl", "bach_bwv846_prelude.mid", "J. S. Bach, Well-Tempered Clavier I, Prelude in C, BWV 846"),
    ("weber/concertino_clarinet.mxl", "weber_clarinet_concertino.mid", "Weber, Clarinet Concertino op. 26"),
    ("leadSheet/fosterBrownHair.mxl", "foster_jeanie_light_brown_hair.mid", "Foster, Jeanie with the Light Brown Hair, lead sheet"),
    ("beethoven/opus18no1/movement1.mxl", "beethoven_op18_no1_mvt1.mid", "Beethoven, String Quartet op. 18 no. 1, first movement"),
    ("beethoven/opus18no1/movement2.mxl", "beethoven_op18_no1_mvt2.mid", "Beethoven, String Quartet op. 18 no. 1, second movement"),
    ("beethoven/opus18no1/movement3.mxl", "beethoven_op18_no1_mvt3.mid", "Beethoven, String Quartet op. 18 no. 1, third movement"),
    ("beethoven/opus18no1/movement4.mxl", "beethoven_op18_no1_mvt4.mid", "Beethoven, String Quartet op. 18 no. 1, fourth movement"),
    ("haydn/opus74no1/movement1.mxl", "haydn_op74_no1_mvt1.mid", "Haydn, String Quartet op. 74 no. 1, first movement"),
    ("haydn/opus74no1/movement2.mxl", "haydn_op74_no1_mvt2.mid", "Haydn, String Quartet op. 74 no. 1, second movement"),
    ("haydn/opus74no1/movement3.mxl", "haydn_op74_no1_mvt3.mid", "Haydn, String Quartet op. 74 no. 1, third movement"),
    ("haydn/opus74no1/movement4.mxl", "haydn_op74_no1_mvt4.mid", "Haydn, String Quartet op. 74 no. 1, fourth movement"),
    ("bach/bwv1.6.mxl", "bach_bwv1_6_chorale.mid", "J. S. Bach, chorale BWV 1.6"),
    ("bach/bwv10.7.mxl", "bach_bwv10_7_chorale.mid", "J. S. Bach, chorale BWV 10.7"),
    ("bach/bwv11.6.mxl", "bach_bwv11_6_chorale.mid", "J. S. Bach, chorale BWV 11.6"),
]


def to_midi_bytes(score) -> bytes:
    """The score as MIDI, repeats played out; a score whose repeats music21 cannot expand
    is played once through, as written."""
    from music21 import bar, midi, repeat, spanner

    try:
        return midi.translate.streamToMidiFile(score).writestr()
    except repeat.ExpanderException:
        pass
    for measure in score.recurse().getElementsByClass("Measure"):
        for side in ("leftBarline", "rightBarline"):
            if isinstance(getattr(measure, side), bar.Repeat):
                setattr(measure, side, bar.Barline("regular"))
    for expression in list(score.recurse().getElementsByClass(repeat.RepeatExpression)):
        expression.activeSite.remove(expression)
    for bracket in list(score.recurse().getElementsByClass(spanner.RepeatBracket)):
        bracket.activeSite.remove(bracket)
    return midi.translate.streamToMidiFile(score).writestr()


def export(output: Path) -> None:
    from music21 import corpus

    output.mkdir(parents=True, exist_ok=True)
    lines = ["# midi_songs: the bundled corpus", "",
             "Exported from the corpus that ships inside music21 by `make songs`",
             "(`midi_songs/export.py`). Drop your own `.mid` files in this folder to train on them too.", "",
             "| file | source work | music21 corpus path |", "| --- | --- | --- |"]
    for source, name, title in WORKS:
        score = corpus.parse(source)
        (output / name).write_bytes(to_midi_bytes(score))
        lines.append(f"| `{name}` | {title} | `{source}` |")
        print(f"{name}: {source}")
    (output / "README.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path(__file__).parent)
    export(parser.parse_args().output)
