"""Ready-made blocks: MLP, sequential, a small conv net, recurrent blocks, seq2seq and Transformers."""
from tinyai.nn.blocks.convnet import SimpleConvNet
from tinyai.nn.blocks.mlp import MlpBlock
from tinyai.nn.blocks.recurrent import GruBlock, LstmBlock, SimpleRnnBlock
from tinyai.nn.blocks.seq2seq import Seq2Seq, Seq2SeqDecoder, Seq2SeqEncoder
from tinyai.nn.blocks.sequential import SequentialBlock
from tinyai.nn.blocks.transformer import Transformer, TransformerDecoder, TransformerEncoder

__all__ = [
    "MlpBlock", "SequentialBlock", "SimpleConvNet", "SimpleRnnBlock", "LstmBlock", "GruBlock",
    "Seq2SeqEncoder", "Seq2SeqDecoder", "Seq2Seq", "TransformerEncoder", "TransformerDecoder", "Transformer",
]
