"""Layer 5: training a model (TinyAI's ml): Model, and the Trainer and friends."""
from tinyai.training.model import Model, ModelInfo
from tinyai.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from tinyai.training.evaluator import AccuracyEval, Evaluator, RegressEval, count_correct
from tinyai.training.monitor import Monitor
from tinyai.training.predictor import ClassTranslator, Predictor, Translator
from tinyai.training.nan_guard import NonFiniteGradientError, NonFiniteLossError
from tinyai.training.precision import MixedPrecision
from tinyai.training.trainer import Trainer

__all__ = ["Model", "ModelInfo",
           "Trainer", "NonFiniteLossError", "NonFiniteGradientError", "Monitor", "Evaluator", "AccuracyEval", "RegressEval",
           "count_correct", "Predictor", "Translator", "ClassTranslator",
           "save_checkpoint", "load_checkpoint", "Checkpoint", "MixedPrecision"]
