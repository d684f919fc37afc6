"""lstm-composer: MIDI → tokens on Spark, a stacked LSTM trained with Horovod on Spark, new music out."""
