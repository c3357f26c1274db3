"""The offline teacher: a small transformer fine-tuned on the training reviews that labels sentences for
the LSTM (the `sentences` channel). Runs outside the image: it needs `transformers` (teacher/README.md)."""
