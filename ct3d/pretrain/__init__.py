"""Self-supervised pretraining on unlabeled scans (``ct3d pretrain``).

* :mod:`~ct3d.pretrain.genesis`: the Models Genesis corruptions, seeded;
* :mod:`~ct3d.pretrain.restore`: the restoration model and :func:`pretrain`, whose
  ``pretrained.keras`` any 3D model of the same builder starts from via
  ``model.params.weights``.
"""

from ct3d.pretrain.restore import PretrainError, pretrain, restoration_model, unlabeled_scans

__all__ = ["PretrainError", "pretrain", "restoration_model", "unlabeled_scans"]
