"""The model zoo: reusable modules for the architectures of the course."""
from .mlp import MLP
from .autoencoder import AutoEncoder  # zoo part A: generative and representation learning
from .vae import VAE
from .gan import GAN, Discriminator, Generator, discriminator_loss, generator_loss
from .diffusion import DDPM, Denoiser, beta_schedule, timestep_embedding
from .contrastive import ContrastiveEncoder, info_nce, knn_accuracy
from .dqn import DQNAgent, QNetwork, ReplayBuffer  # zoo part B: reinforcement learning
from .policy import PolicyNetwork, REINFORCEAgent, ValueNetwork, discounted_returns
from .cnn import DigitsCNN  # zoo part B: vision
from .resnet import BasicBlock, PlainNet, ResNet
from .charlm import (CharLSTM, CharTransformer, CharVocab, StreamBatcher, random_windows,  # zoo part C: sequences
                     sample_next, split_text, unigram_entropy)
from .lstm import ADDING_BASELINE_MSE, LSTMRegressor, adding_problem
from .seq2seq import Seq2Seq, sequence_accuracy, toy_translation_data

__all__ = ["MLP"]
__all__ += ["AutoEncoder", "VAE", "GAN", "Generator", "Discriminator", "discriminator_loss", "generator_loss", "DDPM",
            "Denoiser", "beta_schedule", "timestep_embedding", "ContrastiveEncoder", "info_nce", "knn_accuracy"]
__all__ += ["QNetwork", "ReplayBuffer", "DQNAgent", "PolicyNetwork", "ValueNetwork", "REINFORCEAgent",
            "discounted_returns"]
__all__ += ["DigitsCNN", "BasicBlock", "ResNet", "PlainNet"]
__all__ += ["CharVocab", "split_text", "StreamBatcher", "random_windows", "sample_next", "unigram_entropy",
            "CharLSTM", "CharTransformer", "adding_problem", "LSTMRegressor", "ADDING_BASELINE_MSE", "Seq2Seq",
            "toy_translation_data", "sequence_accuracy"]
