"""exceptions: powervmd's answers and operation outcomes as the nova exceptions the compute
manager expects.

- powervmd unreachable (socket missing, refused, timed out): PowerVMDUnavailable, a
  HypervisorUnavailable (nova treats the hypervisor as down), naming the socket.
- an operation that ended `failed` or `cancelled`: InstanceNotFound when its error_code is
  instance_not_found, else the failure exception of its type (power_off ->
  InstancePowerOffFailure, spawn -> InstanceDeployFailure, ...), with powervmd's error,
  error_code and operation id in the reason.
- an API error answer (400, 409, ...): the type's failure exception as well; a 404 of an
  instance read is InstanceNotFound.
"""
from nova import exception
from nova.i18n import _

from . import client as pvm_client


class PowerVMDUnavailable(exception.HypervisorUnavailable):
    msg_fmt = _("powervmd is unreachable at %(socket)s: %(reason)s")


class OperationFailed(exception.NovaException):
    """A powervmd operation failed in a way no nova exception names."""
    msg_fmt = _("powervmd operation %(op_id)s (%(op_type)s) ended %(state)s: %(reason)s")


# Error codes of powervmd operations (error_code) that mean "no such partition".
NOT_FOUND_CODES = ("instance_not_found",)
# Error codes of a spawn that failed waiting for neutron (network_plugged gate).
VIF_CODES = ("vif_plug_timeout", "vif_plug_failed")


def _failure(op_type, uuid, reason):
    """The nova exception of a failed operation of this type."""
    if op_type == "power_off":
        return exception.InstancePowerOffFailure(reason=reason)
    if op_type in ("power_on", "resume_state_on_host_boot"):
        return exception.InstancePowerOnFailure(reason=reason)
    if op_type == "reboot":
        return exception.InstanceRebootFailure(reason=reason)
    if op_type == "spawn":
        return exception.InstanceDeployFailure(reason=reason)
    if op_type == "destroy":
        return exception.InstanceTerminationFailure(reason=reason)
    if op_type in ("attach_interface", "plug_vifs"):
        return exception.InterfaceAttachFailed(instance_uuid=uuid)
    if op_type == "detach_interface":
        return exception.InterfaceDetachFailed(instance_uuid=uuid)
    if op_type == "unplug_vifs":
        return exception.VirtualInterfaceUnplugException(reason=reason)
    return None


def from_operation(op_type, instance_uuid, op):
    """The exception for a terminal operation that did not succeed."""
    code = op.get("error_code") or ""
    reason = "%s (powervmd operation %s ended %s%s)" % (
        op.get("error") or op.get("state"), op.get("id"), op.get("state"),
        ", error_code %s" % code if code else "")
    if code in NOT_FOUND_CODES:
        return exception.InstanceNotFound(instance_id=instance_uuid)
    if op_type == "spawn" and code in VIF_CODES:
        return exception.VirtualInterfaceCreateException()
    exc = _failure(op_type, instance_uuid, reason)
    if exc is None:
        exc = OperationFailed(op_id=op.get("id"), op_type=op_type, state=op.get("state"),
                              reason=op.get("error") or code or "unknown")
    exc.powervmd_operation = op
    return exc


def from_api_error(op_type, instance_uuid, err):
    """The exception for an error answer of powervmd (client.ApiError)."""
    if err.status == 404 and err.code == "not_found" and op_type is None:
        return exception.InstanceNotFound(instance_id=instance_uuid)
    reason = "powervmd refused it: %s%s" % (err.message,
                                           " (field %s)" % err.field if err.field else "")
    exc = _failure(op_type, instance_uuid, reason) if op_type else None
    if exc is None:
        exc = exception.NovaException(reason)
    exc.powervmd_error = err
    return exc


def from_unreachable(err):
    return PowerVMDUnavailable(socket=err.socket_path, reason=err.reason)


def translate(op_type=None, instance_uuid=None):
    """A context manager turning client exceptions into nova exceptions."""
    return _Translate(op_type, instance_uuid)


class _Translate:
    def __init__(self, op_type, instance_uuid):
        self.op_type = op_type
        self.instance_uuid = instance_uuid

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if ev is None:
            return False
        if isinstance(ev, pvm_client.PowerVMDUnreachable):
            raise from_unreachable(ev) from ev
        if isinstance(ev, pvm_client.ApiError):
            raise from_api_error(self.op_type, self.instance_uuid, ev) from ev
        if isinstance(ev, pvm_client.OperationTimeout):
            exc = _failure(self.op_type, self.instance_uuid, str(ev)) or \
                exception.NovaException(str(ev))
            raise exc from ev
        return False
