"""Parse a folder (or bucket) of MIDI files into the `pieces` and `notes` Parquet tables.

    spark-submit jobs/parse.py --input midi_songs --output data/corpus
"""
import argparse

from pyspark.sql import SparkSession

from lstm_composer.corpus import ParseConfig, parse_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, help="folder or URI holding .mid/.midi files (searched recursively)")
    parser.add_argument("--output", required=True, help="where the pieces/ and notes/ tables are written")
    args = parser.parse_args()
    config = ParseConfig(input_path=args.input, output_path=args.output)

    spark = SparkSession.builder.appName("lstm-composer parse").getOrCreate()
    summary = parse_corpus(spark, config)
    spark.stop()
    print(f"parsed {summary}; tables in {config.output_path}/pieces and {config.output_path}/notes")


if __name__ == "__main__":
    main()
