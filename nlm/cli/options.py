"""Choices shared by several commands, as Enums so Typer lists and checks them."""

from __future__ import annotations

from enum import Enum


class Level(str, Enum):
    word = "word"
    char = "char"
    bpe = "bpe"
    unigram = "unigram"


class Cell(str, Enum):
    rnn_tanh = "rnn-tanh"
    rnn_relu = "rnn-relu"
    lstm = "lstm"
    gru = "gru"


class Mode(str, Enum):
    stream = "stream"
    sentence = "sentence"


class Optimizer(str, Enum):
    sgd = "sgd"
    adam = "adam"
    adamw = "adamw"


class Schedule(str, Enum):
    plateau = "plateau"
    decay = "decay"
    none = "none"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"
