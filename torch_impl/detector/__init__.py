"""The detector: an application built on the GFL library, not a part of it.

A small object detector (ResNet-style backbone, FPN, the library's
``GFLHead``) with everything an application needs around it: data
(:mod:`.data`: the synthetic set, COCO files), the model (:mod:`.model`), the
training loop (:mod:`.train`), checkpoints (:mod:`.checkpoint`), COCO
evaluation (:mod:`.evaluate`), pictures (:mod:`.visualize`) and the ``gfl``
command line (:mod:`.cli`, also ``python -m torch_impl``).

It uses the library only through its public names (``from torch_impl import
GFLHead, …``); the library (:mod:`reference`, :mod:`torch_impl`) never imports
this package, so a reader of GFL meets no argparse, PNG rendering or
checkpoint code there.
"""
