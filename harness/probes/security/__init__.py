"""D17 AI security testing: the platform's black-box adversarial attacks (digital and
physical world) against the harness's reference targets, every example judged by the
harness through its own metered query interface."""

from harness.probes.security import probe

__all__ = ["probe"]
