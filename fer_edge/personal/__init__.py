"""Per-person calibration: ``fer-edge enroll`` profiles and their use. Light tier.

- :mod:`fer_edge.personal.method`: the calibration (a ridge-shrunk linear correction of the
  model's logits on its embedding, fitted on the person's shots);
- :mod:`fer_edge.personal.profile`: the profile file (no images; bound to the model's sha256;
  integrity-checked; written 0600);
- :mod:`fer_edge.personal.enroll`: crops -> profile, and ``DIR/<expression>/`` photos -> crops;
- :mod:`fer_edge.personal.guided`: the guided camera/video session;
- :mod:`fer_edge.personal.cli`: ``fer-edge enroll``.
"""

from __future__ import annotations

__all__ = ["Profile", "load_profile"]


def __getattr__(name: str):
    if name in __all__:
        from fer_edge.personal import profile

        return getattr(profile, name)
    raise AttributeError(name)
