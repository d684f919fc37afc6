# lstm-composer: every target installs what it needs into .venv first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
SPARK_SUBMIT := $(VENV)/bin/spark-submit
STAMP := $(VENV)/.installed

# Horovod is compiled from source against the TensorFlow already in the venv,
# with Gloo only (no MPI needed), and without build isolation so it sees that TF.
HOROVOD_FLAGS := HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
	HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1

CORPUS := data/corpus
MODEL := models/run
# make run trains for RUN_MINUTES, or until PATIENCE epochs pass without a better validation loss.
RUN_MINUTES ?= 6.5
PATIENCE ?= 12

# Spark's own Python and console logging for every job and test started from here.
export PYSPARK_PYTHON := $(abspath $(PY))
export SPARK_CONF_DIR := $(abspath cluster/conf)
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: install run test songs bench bench-parse bench-train bench-generate bench-recordings bench-scale bench-quality compare-presets dist fuzz clean audio-deps

# $(call venv_with_horovod,PYTHON): TensorFlow, then Horovod built against it, into PYTHON's venv.
define venv_with_horovod
	$(1) -m pip install --quiet --upgrade "pip<25" wheel "setuptools<70"
	$(1) -m pip install --quiet -c constraints.txt tensorflow-cpu numpy
	$(HOROVOD_FLAGS) $(1) -m pip install --no-build-isolation -c constraints.txt horovod
endef

install: $(STAMP)

$(STAMP): setup.py constraints.txt
	@for tool in java cmake g++ $(PYTHON); do command -v $$tool >/dev/null || \
		{ echo "make install needs $$tool (Java 17 for Spark; cmake and g++ to build Horovod; Python 3.11)"; exit 1; }; done
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(call venv_with_horovod,$(PY))
	$(PIP) install --quiet -c constraints.txt -e ".[test]"
	$(PY) -c "import horovod.tensorflow.keras, pyspark, music21, pyarrow; import horovod.common.util as u; assert u.gloo_built(), 'Horovod was built without Gloo'"
	touch $(STAMP)

run: install
	$(SPARK_SUBMIT) --master "local[2]" jobs/parse.py --input midi_songs --output $(CORPUS)
	rm -rf $(MODEL)
	$(SPARK_SUBMIT) --master "local[2]" jobs/train.py --corpus $(CORPUS) --model-dir $(MODEL) --preset small \
		--epochs 1000 --max-minutes $(RUN_MINUTES) --patience $(PATIENCE) --num-proc 2
	$(PY) jobs/evaluate.py --model-dir $(MODEL)
	$(PY) jobs/generate.py --model-dir $(MODEL) --length 500 --seed 7 --output output/generated.mid --musicxml --plot

# Tests run in TEST_PROCESSES pytest processes: much of a Spark or Horovod test is one core
# starting a JVM or importing TensorFlow, and another test can use the other core meanwhile.
TEST_PROCESSES ?= 2
test: install audio-deps
	$(PY) -m pytest -n $(TEST_PROCESSES)

FUZZ_SECONDS ?= 300
fuzz: install
	$(PY) tests/fuzz_midi.py --seconds $(FUZZ_SECONDS)

SHARED_MIDI ?= ../shared/midi/piano-midi

bench: bench-parse bench-train bench-generate

bench-parse: install
	$(PY) bench/parse.py --corpus $(SHARED_MIDI)

bench-generate: install
	$(PY) bench/generate.py

bench-train: install
	$(PY) bench/train.py

# Score and performance MIDI of the same pieces, laid out as the ASAP dataset
# (github.com/fosfrancesco/asap-dataset); not part of `make bench`, which needs no download.
RECORDINGS ?= ../data/asap-dataset
bench-recordings: install
	@test -d $(RECORDINGS) || { echo "bench-recordings needs RECORDINGS=<folder of score and performance MIDI, e.g. a clone of github.com/fosfrancesco/asap-dataset>"; exit 1; }
	$(PY) bench/recordings.py --folder $(RECORDINGS)

# 50,000 synthetic files in a temporary folder, parsed twice, then 1 and 2 ranks on the notes table.
bench-scale: install
	$(PY) bench/scale.py

# The composer preset on a real corpus, QUALITY_MINUTES of training each: modern-39.txt, then
# every piece of the folder. QUALITY_FOLDER may be any folder of MIDI files (leave QUALITY_LIST
# empty to use them all).
QUALITY_FOLDER ?= $(SHARED_MIDI)
QUALITY_LIST ?= modern-39.txt
QUALITY_MINUTES ?= 20
# Each piece's style label (train.py --style-from): its folder, the composer's in piano-midi;
# bench/styles.py then judges generate --style on the five labels with the most pieces.
QUALITY_STYLES ?= folder
bench-quality: install
	rm -rf models/quality-*
	$(if $(QUALITY_LIST),$(PY) bench/quality.py --folder $(QUALITY_FOLDER) --list $(QUALITY_LIST) --minutes $(QUALITY_MINUTES) \
		--style-from $(QUALITY_STYLES))
	$(PY) bench/quality.py --folder $(QUALITY_FOLDER) --minutes $(QUALITY_MINUTES) --style-from $(QUALITY_STYLES)
	$(PY) bench/styles.py --model-dir models/quality-$(notdir $(QUALITY_FOLDER))/model --style-guidance 0 1 \
		--candidates 1 8

MINUTES ?= 6
compare-presets: install
	$(PY) bench/compare_presets.py --corpus $(SHARED_MIDI) --minutes $(MINUTES) paper paper-alt fast expressive small

songs: install
	$(PY) midi_songs/export.py --output midi_songs

# What executors need on a cluster (cluster/README.md): the package as a zip for --py-files,
# and a packed virtualenv with everything for --archives.
dist: dist/lstm_composer.zip dist/lstm_composer-venv.tar.gz

PACKAGE_SOURCES := $(wildcard lib/lstm_composer/*.py lib/lstm_composer/*/*.py)

dist/lstm_composer.zip: $(PACKAGE_SOURCES)
	@mkdir -p dist
	$(PYTHON) -c "import sys, zipfile, pathlib; \
		z = zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED); \
		[z.write(p, p.relative_to('lib')) for p in sorted(pathlib.Path('lib/lstm_composer').rglob('*.py'))]" $@

DIST_VENV := dist/venv
dist/lstm_composer-venv.tar.gz: setup.py constraints.txt $(PACKAGE_SOURCES)
	rm -rf $(DIST_VENV) $@
	$(PYTHON) -m venv $(DIST_VENV)
	$(call venv_with_horovod,$(DIST_VENV)/bin/python)
	$(DIST_VENV)/bin/python -m pip install --quiet -c constraints.txt . venv-pack
	$(DIST_VENV)/bin/venv-pack --quiet --prefix $(DIST_VENV) --output $@
	rm -rf $(DIST_VENV) build

clean:
	rm -rf data models output spark-warehouse dist

# WAV rendering (lstm_composer.render.audio): the fluidsynth synthesiser and a General MIDI soundfont.
# `make test` renders real audio, so it installs them when they are missing.
audio-deps:
	@if command -v fluidsynth >/dev/null && [ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ]; then exit 0; fi; \
	SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
	$$SUDO apt-get update && \
	$$SUDO apt-get install -y --no-install-recommends fluidsynth fluid-soundfont-gm
