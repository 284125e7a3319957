"""powervmd's nova compute driver shim, installed as nova.virt.powervmd.

nova.conf: compute_driver = powervmd.PowerVMDriver (docs/nova.md).
"""
from .driver import PowerVMDriver  # noqa: F401

__all__ = ["PowerVMDriver"]
