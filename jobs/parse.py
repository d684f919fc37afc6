"""Parse a folder (or bucket) of MIDI files into the `pieces` and `notes` Parquet tables.

    spark-submit jobs/parse.py --input midi_songs --output data/corpus
"""
import argparse
import re
import sys

from py4j.protocol import Py4JJavaError
from pyspark.sql import SparkSession

from lstm_composer.corpus import ParseConfig, parse_corpus
from lstm_composer.locks import Busy
from lstm_composer.tables import Corpus
from lstm_composer.tokens import parse_onset_tolerance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, help="folder or URI holding .mid/.midi files (searched recursively)")
    parser.add_argument("--output", required=True, help="where the pieces/ and notes/ tables are written")
    parser.add_argument("--max-bytes", type=int, default=16 << 20, help="larger files are reported, not read")
    parser.add_argument("--file-timeout", type=float, default=60.0, help="seconds one file's parse may take")
    parser.add_argument("--onset-tolerance", type=parse_onset_tolerance, default=None, metavar="MS|auto",
                        help="notes starting within MS milliseconds form one token (0: the same tick); default "
                             "auto: 50 for recordings of playing, 0 for sequenced files")
    parser.add_argument("--retry-failed", action="store_true", help="parse files that failed in earlier runs again")
    parser.add_argument("--driver-max-files", type=int, default=1000, metavar="N",
                        help="a re-run with at most N new files (64 MiB) parses them on the driver, without a "
                             "Spark job; 0: always a Spark job")
    parser.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="wait this long for another parse job writing the same --output (default: refuse)")
    args = parser.parse_args()
    if args.max_bytes < 1:
        parser.error(f"--max-bytes must be at least 1, got {args.max_bytes}")
    try:
        config = ParseConfig(input_path=args.input, output_path=args.output, max_bytes=args.max_bytes,
                             file_timeout=args.file_timeout, onset_tolerance_ms=args.onset_tolerance,
                             retry_failed=args.retry_failed, driver_max_files=args.driver_max_files,
                             lock_wait=args.wait)
    except ValueError as error:
        parser.error(str(error))

    spark = SparkSession.builder.appName("lstm-composer parse").getOrCreate()
    try:
        summary = parse_corpus(spark, config)
    except (ValueError, Busy) as error:  # nothing to parse, or another job writes the output
        sys.exit(f"parse: {error}")
    except OSError as error:  # the output cannot be written: a file, read-only, a full disk
        sys.exit(f"parse: cannot write the tables in {args.output}: {error}. Nothing was committed.")
    except Py4JJavaError as error:  # a Spark job failed: its deepest cause, where the JVM gives one
        causes = re.findall(r"(?m)^Caused by: (.*)$", str(error.java_exception)) or [str(error.java_exception)]
        sys.exit(f"parse: a Spark job failed: {causes[-1].strip()}. Nothing was committed.")
    finally:
        spark.stop()
    corpus = Corpus(config.output_path)
    print(f"parsed {summary}; tables in {corpus.pieces} and {corpus.notes}")


if __name__ == "__main__":
    main()
