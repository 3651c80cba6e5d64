"""What a saved folder can hold, each on the same backbone interface (pooled embedding and
P2..P5 pyramid): a classifier, a few-shot head, a verifier. Each module registers its kind
with :func:`zoo.io.register_kind`, so ``zoo.load(folder)`` opens it; trainers and demo data
live in ``recipes``."""
