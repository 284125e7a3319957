"""driver: PowerVMDriver, nova's ComputeDriver on top of powervmd's local API.

Installed as nova/virt/powervmd/ (scripts/install-shim), loaded with
`compute_driver = powervmd.PowerVMDriver`. Every method is one of:

- a mutation: an operation submitted to POST /v1/operations, then long-polled
  (GET /v1/operations/{id}?wait=) to its end. Its idempotency key is built from nova's
  request id, the operation type, the instance and the target (port id), so the same
  call sent twice (a retry of the shim, a message redelivered to nova-compute) finds the
  operation powervmd already has instead of running again. A failed operation becomes
  the nova exception of its type (exceptions.py).
- a read: straight to GET /v1/host, /v1/instances, /v1/instances/{uuid}.
- work needing nova's own services, kept here: image bytes from nova's image API streamed
  to PUT /v1/images/{id}; the config drive built with InstanceMetadata and
  ConfigDriveBuilder and streamed to PUT /v1/config-drives/{uuid}; neutron's
  network-vif-plugged events awaited through the virt API, then the spawn's
  network_plugged gate opened with a signal.
- not yet supported: raises NotImplementedError, with its capability off
  (UNSUPPORTED below, docs/nova.md).

Everything blocking goes through the standard socket module (client.py), green under
nova-compute's eventlet.
"""
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import uuid as uuidlib

import os_resource_classes as orc
from oslo_context import context as oslo_context

from nova.api.metadata import base as instance_metadata
from nova.compute import power_state
from nova import context as nova_context
from nova import exception
from nova.image import glance
from nova import objects
from nova import utils
from nova.virt import configdrive
from nova.virt import driver
from nova.virt import hardware

import nova.conf

from . import client as pvm_client
from . import conf as pvm_conf
from . import events as pvm_events
from . import exceptions as pvm_exc

LOG = logging.getLogger(__name__)
CONF = nova.conf.CONF
pvm_conf.register_opts(CONF)

DISABLE_PREFIX = "AUTO: "

# ComputeDriver methods not supported yet: each raises NotImplementedError (docs/nova.md
# lists them with the work that brings them).
UNSUPPORTED = {
    "snapshot": "image capture (the capture issue)",
    "live_migration": "live migration (the migration issue)",
    "live_migration_force_complete": "live migration",
    "live_migration_abort": "live migration",
    "pre_live_migration": "live migration",
    "post_live_migration_at_destination": "live migration",
    "post_live_migration_at_source": "live migration",
    "rollback_live_migration_at_destination": "live migration",
    "check_can_live_migrate_destination": "live migration",
    "check_can_live_migrate_source": "live migration",
    "cleanup_live_migration_destination_check": "live migration",
    "check_instance_shared_storage_local": "live migration",
    "check_instance_shared_storage_remote": "live migration",
    "get_instance_disk_info": "live migration",
    "migrate_disk_and_power_off": "resize and cold migration (the migration issue)",
    "finish_migration": "resize and cold migration",
    "confirm_migration": "resize and cold migration",
    "finish_revert_migration": "resize and cold migration",
    "attach_volume": "volumes (the volume issue)",
    "detach_volume": "volumes",
    "swap_volume": "volumes",
    "extend_volume": "volumes",
    "get_volume_connector": "volumes",
    "volume_snapshot_create": "volumes",
    "volume_snapshot_delete": "volumes",
    "get_all_volume_usage": "volumes",
    "rescue": "rescue",
    "unrescue": "rescue",
    "pause": "pause (PowerVM has no paused partition state)",
    "unpause": "pause",
    "suspend": "suspend and resume",
    "resume": "suspend and resume",
    "soft_delete": "soft delete",
    "restore": "soft delete",
    "trigger_crash_dump": "crash dump",
    "set_admin_password": "admin password (needs RMC)",
    "get_console_output": "consoles",
    "get_vnc_console": "consoles",
    "get_spice_console": "consoles",
    "get_rdp_console": "consoles",
    "get_serial_console": "consoles",
    "get_mks_console": "consoles",
    "get_diagnostics": "diagnostics",
    "get_instance_diagnostics": "diagnostics",
    "block_stats": "diagnostics",
    "host_power_action": "host power actions",
    "host_maintenance_mode": "host maintenance mode",
    "set_host_enabled": "the os-hosts API (the service is enabled and disabled by the "
                        "health check)",
    "get_device_name_for_instance": "volumes (device names)",
    "default_device_names_for_instance": "volumes (device names)",
    "default_root_device_name": "volumes (device names)",
    "quiesce": "snapshots with quiesce",
    "unquiesce": "snapshots with quiesce",
    "cache_image": "image pre-caching (the image cache is filled by spawn)",
    "power_update_event": "ironic only",
    "rebuild": "rebuild in the driver (nova falls back to destroy and spawn)",
}


def _unsupported(name):
    def method(self, *args, **kwargs):
        raise NotImplementedError("powervmd does not support %s yet: %s" % (
            name, UNSUPPORTED[name]))
    method.__name__ = name
    method.__doc__ = "Not supported yet (%s): raises NotImplementedError." % UNSUPPORTED[name]
    return method


def _field(instance, name, default=None):
    """A field of an Instance object, a DB model or a dict, without lazy-loading."""
    if hasattr(instance, "obj_attr_is_set"):
        if name == "name" or instance.obj_attr_is_set(name):
            try:
                return getattr(instance, name)
            except Exception:
                return default
        return default
    try:
        return instance[name]
    except (KeyError, AttributeError, TypeError):
        return getattr(instance, name, default)


def _uuid(instance):
    return str(_field(instance, "uuid")).lower()


def _jsonable(obj, depth=0):
    """nova's structures (network_info models, block device dicts, objects) as JSON."""
    if depth > 20:
        return str(obj)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if hasattr(obj, "obj_to_primitive") and hasattr(obj, "fields"):
        out = {}
        for f in obj.fields:
            if obj.obj_attr_is_set(f):
                out[f] = _jsonable(getattr(obj, f), depth + 1)
        return out
    if isinstance(obj, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [_jsonable(v, depth + 1) for v in obj]
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    return str(obj)


def vif_params(vif):
    """A network_info entry as powervmd's vif: nova's fields as they are, with
    details.vlan filled from the network's VLAN (network.meta.vlan) when the port binding
    did not put it in details (ovs and bridge ports carry it on the network)."""
    v = _jsonable(vif)
    details = v.get("details") or {}
    if "vlan" not in details:
        meta = (v.get("network") or {}).get("meta") or {}
        if meta.get("vlan") is not None:
            details["vlan"] = int(meta["vlan"])
    v["details"] = details
    return v


def network_info_params(network_info):
    return [vif_params(v) for v in (network_info or [])]


def block_device_info_params(bdi):
    if not bdi:
        return {}
    out = {}
    for k in ("root_device_name", "swap", "ephemerals", "block_device_mapping"):
        if k in bdi:
            out[k] = _jsonable(bdi[k])
    return out


class PowerVMDriver(driver.ComputeDriver):
    """nova's compute driver for PowerVM, through powervmd (docs/nova.md)."""

    capabilities = {
        "has_imagecache": False,
        "supports_evacuate": False,
        "supports_migrate_to_same_host": False,
        "supports_attach_interface": True,
        "supports_device_tagging": False,
        "supports_tagged_attach_interface": False,
        "supports_tagged_attach_volume": False,
        "supports_extend_volume": False,
        "supports_multiattach": False,
        "supports_trusted_certs": False,
        "supports_pcpus": False,
        "supports_accelerators": False,
        "supports_bfv_rescue": False,
        "supports_vtpm": False,
        "supports_secure_boot": False,
        "supports_socket_pci_numa_affinity": False,
        "supports_remote_managed_ports": False,
        "supports_ephemeral_encryption": False,
        "supports_ephemeral_encryption_luks": False,
        "supports_ephemeral_encryption_plain": False,
        "supports_image_type_aki": False,
        "supports_image_type_ami": False,
        "supports_image_type_ari": False,
        "supports_image_type_iso": False,
        "supports_image_type_qcow2": False,
        "supports_image_type_raw": True,
        "supports_image_type_vdi": False,
        "supports_image_type_vhd": False,
        "supports_image_type_vhdx": False,
        "supports_image_type_vmdk": False,
        "supports_image_type_ploop": False,
    }

    def __init__(self, virtapi):
        super().__init__(virtapi)
        opts = CONF.powervmd
        self.client = pvm_client.Client(opts.api_socket, timeout=opts.request_timeout,
                                        long_poll=opts.long_poll)
        self._listener = None
        self._listener_thread = None
        self._host = None  # the host nova runs this service as (init_host)
        self._reconciled = False  # nova's view sent since init_host
        self._partition_to_instance = {}  # partition UUID (upper) -> instance UUID
        self.health = {"ok": None, "reason": None, "changes": 0}
        self._image_api = None

    # ------------------------------------------------------------------ helpers
    def _request_id(self, context=None):
        ctx = context if context is not None and hasattr(context, "request_id") else \
            oslo_context.get_current()
        if ctx is not None:
            rid = getattr(ctx, "global_id", None) or getattr(ctx, "request_id", None)
            if rid:
                return str(rid)
        return "req-shim-%s" % uuidlib.uuid4()

    @staticmethod
    def idempotency_key(request_id, op_type, instance_uuid, target=None, params=None):
        """nova's request id, the type, the instance and the target: the same call made
        again maps to the same operation. The call's other arguments (params without the
        instance, whose power and task states move) add a short digest, so that one nova
        request making the same call twice with other arguments (destroy with and without
        network_info) gets two operations instead of a 409."""
        key = "nova:%s:%s:%s" % (request_id, op_type, instance_uuid)
        if target:
            key += ":%s" % target
        rest = {k: v for k, v in (params or {}).items() if k != "instance"}
        if rest:
            digest = hashlib.sha256(json.dumps(rest, sort_keys=True, default=str).encode())
            key = key[:240] + ":" + digest.hexdigest()[:12]
        return key[:255]

    def _instance_params(self, instance):
        out = {"uuid": _uuid(instance)}
        for f in ("name", "display_name", "hostname", "power_state", "vm_state",
                  "task_state", "host", "node", "project_id", "user_id"):
            v = _field(instance, f)
            if v is not None:
                out[f] = v
        return out

    def _note_instance(self, instance_uuid):
        self._partition_to_instance[pvm_events.partition_uuid_of(instance_uuid)] = \
            instance_uuid.lower()

    def run_operation(self, op_type, instance, params, context=None, target=None,
                      on_submitted=None, deadline_s=None):
        """Submits an operation and long-polls it to its end: returns its result, or
        raises the nova exception of its failure. on_submitted(op_id) runs between."""
        iuuid = _uuid(instance) if instance is not None else None
        rid = self._request_id(context)
        key = self.idempotency_key(rid, op_type, iuuid, target, params)
        with pvm_exc.translate(op_type, iuuid):
            op_id, existing = self.client.submit(op_type, iuuid, params, key,
                                                 request_id=rid, deadline_s=deadline_s)
        LOG.info("powervmd: %s of instance %s is operation %d%s", op_type, iuuid, op_id,
                 " (already submitted)" if existing else "")
        if on_submitted is not None:
            on_submitted(op_id)
        return self.finish_operation(op_type, iuuid, op_id)

    def finish_operation(self, op_type, iuuid, op_id):
        with pvm_exc.translate(op_type, iuuid):
            op = self.client.wait(op_id, timeout=CONF.powervmd.operation_timeout)
        if op["state"] != "succeeded":
            raise pvm_exc.from_operation(op_type, iuuid, op)
        return op.get("result") or {}

    def _read(self, fn, *args):
        with pvm_exc.translate():
            return fn(*args)

    def _host_info(self):
        return self._read(self.client.host)

    # ------------------------------------------------------------------ host
    def init_host(self, host):
        """Checks powervmd (and through it the HMC), that it manages the node nova has
        for this host, sends nova's view to POST /v1/reconcile and starts the event
        and health loop. powervmd down is not fatal: the service is disabled until it
        answers (health check)."""
        self._host = host
        self._reconciled = False
        ok, reason = self._health()
        if ok:
            try:
                self._after_connect()
            except exception.HypervisorUnavailable as e:  # gone again in between
                ok, reason = False, str(e)
        if not ok:
            LOG.error("powervmd: %s; the compute service stays disabled until it answers "
                      "(then nova's view is sent to it)", reason)
        self._set_health(ok, reason)
        self._start_listener()

    def _after_connect(self):
        """Once per init_host, the first time powervmd answers: the node check and nova's
        view for POST /v1/reconcile."""
        ctx = nova_context.get_admin_context()
        info = self._host_info()
        self._check_node(ctx, self._host, info)
        if self._reconcile(ctx, self._host) is not None:
            self._reconciled = True

    def _check_node(self, ctx, host, info):
        nodes = info.get("nodes") or [info.get("hypervisor_hostname")]
        try:
            known = objects.ComputeNodeList.get_all_by_host(ctx, host)
        except exception.ComputeHostNotFound:
            return
        names = [cn.hypervisor_hostname for cn in known]
        if names and not set(names) & set(nodes):
            raise exception.InvalidConfiguration(
                "powervmd at %s manages %s, but nova's compute nodes of host %s are %s: "
                "check powervm_managed_system in powervmd.conf" % (
                    CONF.powervmd.api_socket, ", ".join(nodes), host, ", ".join(names)))

    def _reconcile(self, ctx, host):
        insts = objects.InstanceList.get_by_host(ctx, host)
        view = []
        for inst in insts:
            view.append({"uuid": inst.uuid, "vm_state": inst.vm_state,
                         "task_state": inst.task_state})
            self._note_instance(inst.uuid)
        try:
            out = self.client.reconcile(view)
        except (pvm_client.PowerVMDUnreachable, pvm_client.ApiError) as e:
            LOG.warning("powervmd: reconcile not done: %s", e)
            return None
        LOG.info("powervmd: reconciled with nova's %d instances: cancelled %s, kept %s, "
                 "unknown %s", len(view), out.get("cancelled"), out.get("kept"),
                 out.get("unknown_instances"))
        return out

    def cleanup_host(self, host):
        self._stop_listener()

    def _start_listener(self):
        if self._listener is not None:
            return
        opts = CONF.powervmd
        life = pvm_events.LifecycleEvents(opts.event_delay, self._partition_state,
                                          self._instance_of_partition, self.emit_event)
        self._listener = pvm_events.EventListener(
            self.client, life, self._check_health, opts.health_interval, opts.long_poll)
        self._listener_thread = utils.spawn(self._listener.run)

    def _stop_listener(self):
        listener, thread = self._listener, self._listener_thread
        self._listener = self._listener_thread = None
        if listener is not None:
            listener.stop()
        if thread is not None and hasattr(thread, "kill"):
            thread.kill()

    def _partition_state(self, partition_uuid):
        inst = self.client.instance(partition_uuid)
        return None if inst is None else inst.get("state")

    def _instance_of_partition(self, partition_uuid):
        ctx = nova_context.get_admin_context()
        known = self._partition_to_instance.get(partition_uuid.upper())
        for cand in ([known] if known else []) + \
                pvm_events.candidate_instance_uuids(partition_uuid):
            try:
                inst = objects.Instance.get_by_uuid(ctx, cand)
            except exception.InstanceNotFound:
                continue
            self._partition_to_instance[partition_uuid.upper()] = inst.uuid
            return inst
        return None

    def _health(self):
        """(ok, reason): powervmd ready, its managed system read and operating."""
        ok, body = self.client.healthz()
        if not ok:
            return False, body
        try:
            info = self.client.host()
        except pvm_client.PowerVMDUnreachable as e:
            return False, "powervmd is unreachable (%s)" % e.reason
        except pvm_client.ApiError as e:
            return False, "powervmd cannot read the managed system (%s)" % e.message
        state = (info.get("state") or "").lower()
        if state and state not in ("operating", "standby"):
            return False, "managed system %s is %s" % (info.get("name"), info.get("state"))
        return True, None

    def _check_health(self):
        ok, reason = self._health()
        if ok and not self._reconciled and self._host is not None:
            try:
                self._after_connect()
            except exception.InvalidConfiguration as e:
                ok, reason = False, str(e)
            except Exception as e:
                LOG.warning("powervmd: reconcile after connecting: %s", e)
        self._set_health(ok, reason)

    def _set_health(self, ok, reason):
        if self.health["ok"] is ok:
            return
        if ok:
            LOG.info("powervmd: reachable and ready again: enabling the compute service")
        else:
            LOG.warning("powervmd: %s: disabling the compute service", reason)
        self.health.update(ok=ok, reason=reason)
        self.health["changes"] += 1
        self._set_host_enabled(ok, reason or None)

    def _set_host_enabled(self, enabled, disable_reason=None):
        """Enables or disables this compute service as libvirt's driver does when it
        loses its hypervisor: an automatic reason starts with 'AUTO: ', and only such
        a disablement is undone automatically (an operator's one stays)."""
        if self._host is None:
            return
        disable = not enabled
        ctx = nova_context.get_admin_context()
        try:
            service = objects.Service.get_by_compute_host(ctx, self._host)
            if service.disabled == disable:
                return
            if not service.disabled or (service.disabled_reason and
                                        service.disabled_reason.startswith(DISABLE_PREFIX)):
                service.disabled = disable
                service.disabled_reason = (DISABLE_PREFIX + disable_reason
                                           if disable and disable_reason else None)
                service.save()
                try:
                    self.virtapi.update_compute_provider_status(
                        ctx, service.compute_node.uuid, enabled=not disable)
                except Exception:
                    LOG.warning("powervmd: compute provider status not updated",
                                exc_info=True)
            else:
                LOG.debug("powervmd: not overriding a manual disablement")
        except exception.ComputeHostNotFound:
            LOG.warning("powervmd: cannot update the service status of host %s: not "
                        "registered", self._host)
        except Exception:
            LOG.warning("powervmd: cannot update the service status of host %s",
                        self._host, exc_info=True)

    def get_available_resource(self, nodename):
        h = self._host_info()
        local_gb = int(h.get("local_gb") or 0)
        local_gb_used = int(h.get("local_gb_used") or 0)
        return {
            "vcpus": int(h["vcpus"]),
            "memory_mb": int(h["memory_mb"]),
            "local_gb": local_gb,
            "vcpus_used": int(h.get("vcpus_used") or 0),
            "memory_mb_used": int(h.get("memory_mb_used") or 0),
            "local_gb_used": local_gb_used,
            "hypervisor_type": h["hypervisor_type"],
            "hypervisor_version": int(h["hypervisor_version"]),
            "hypervisor_hostname": h["hypervisor_hostname"],
            "cpu_info": h.get("cpu_info") or "{}",
            "disk_available_least": int(h.get("disk_available_least",
                                              local_gb - local_gb_used)),
            "supported_instances": [tuple(x) for x in h.get("supported_instances") or []],
            "numa_topology": None,
            "pci_passthrough_devices": None,
        }

    def update_provider_tree(self, provider_tree, nodename, allocations=None):
        """powervmd's inventory, with nova's allocation ratios and its reserved settings
        where they ask for more than powervmd reserves."""
        h = self._host_info()
        inv = h.get("inventory") or {}
        ratios = self._get_allocation_ratios(provider_tree.data(nodename).inventory)
        conf_reserved = {
            orc.VCPU: CONF.reserved_host_cpus,
            orc.MEMORY_MB: CONF.reserved_host_memory_mb,
            orc.DISK_GB: self._get_reserved_host_disk_gb_from_config(),
        }
        out = {}
        for rc in (orc.VCPU, orc.MEMORY_MB, orc.DISK_GB):
            r = inv.get(rc)
            if not r or not r.get("total"):
                continue
            out[rc] = {
                "total": int(r["total"]),
                "min_unit": int(r.get("min_unit", 1)),
                "max_unit": int(r.get("max_unit", r["total"])),
                "step_size": int(r.get("step_size", 1)),
                "allocation_ratio": ratios[rc],
                "reserved": max(int(r.get("reserved", 0)), int(conf_reserved[rc] or 0)),
            }
        provider_tree.update_inventory(nodename, out)

    def get_available_nodes(self, refresh=False):
        h = self._host_info()
        return list(h.get("nodes") or [h["hypervisor_hostname"]])

    def node_is_available(self, nodename):
        return nodename in self.get_available_nodes(refresh=True)

    def get_host_ip_addr(self):
        """The address nova knows this compute service by (CONF.my_ip), as nova-powervm
        and libvirt answer: nova uses it to reach the compute host (migrations, consoles).
        The managed system's own address (its service processor's, GET /v1/host
        ip_address) only stands in when my_ip is unset."""
        if CONF.my_ip:
            return CONF.my_ip
        try:
            return self.client.host().get("ip_address") or CONF.my_ip
        except (pvm_client.PowerVMDUnreachable, pvm_client.ApiError):
            return CONF.my_ip

    def get_host_uptime(self):
        """The managed system's uptime (GET /v1/host uptime_s, from its pcm time base)
        as an `uptime` line, nova's os-hypervisors format; this host's until powervmd
        has read it."""
        h = self._host_info()
        secs = h.get("uptime_s")
        if secs is None:  # powervmd has not read the pcm sample yet: this host's
            with open("/proc/uptime") as f:
                secs = float(f.read().split()[0])
        load = os.getloadavg()
        return "%s up %d days, %d:%02d, load average: %.2f, %.2f, %.2f" % (
            time.strftime("%H:%M:%S"), secs // 86400, (secs % 86400) // 3600,
            (secs % 3600) // 60, load[0], load[1], load[2])

    def get_host_cpu_stats(self):
        """powervmd's host CPU statistics (GET /v1/host cpu_stats: kernel, idle, user,
        iowait, frequency), from PowerVM's pcm metrics."""
        h = self._host_info()
        stats = h.get("cpu_stats")
        if not stats:
            raise NotImplementedError("powervmd at %s reports no cpu_stats in GET /v1/host" %
                                      CONF.powervmd.api_socket)
        return {k: int(stats[k]) for k in ("kernel", "idle", "user", "iowait", "frequency")}

    # ------------------------------------------------------------------ instances
    def list_instances(self):
        return [i["name"] for i in self._read(self.client.instances)]

    def list_instance_uuids(self):
        """nova instance UUIDs of the partitions: the partition UUID is derived from the
        instance UUID, so each has two candidates; nova's database (and what this shim
        has seen) tells which."""
        parts = self._read(self.client.instances)
        out, unresolved = [], {}
        for p in parts:
            puuid = (p.get("partition_uuid") or p["uuid"]).upper()
            known = self._partition_to_instance.get(puuid)
            if known:
                out.append(known)
            else:
                unresolved[puuid] = pvm_events.candidate_instance_uuids(puuid)
        if unresolved:
            ctx = nova_context.get_admin_context()
            cands = [c for cs in unresolved.values() for c in cs]
            found = set()
            try:
                for inst in objects.InstanceList.get_by_filters(
                        ctx, {"uuid": cands}, expected_attrs=[]):
                    found.add(inst.uuid)
            except Exception:
                LOG.warning("powervmd: looking up partitions in nova's database",
                            exc_info=True)
            for puuid, cs in unresolved.items():
                match = [c for c in cs if c in found]
                u = match[0] if match else cs[0]
                if match:
                    self._partition_to_instance[puuid] = u
                out.append(u)
        return out

    def instance_exists(self, instance):
        return self._read(self.client.instance, _uuid(instance)) is not None

    def get_info(self, instance, use_cache=True):
        iuuid = _uuid(instance)
        inst = self._read(self.client.instance, iuuid)
        if inst is None:
            raise exception.InstanceNotFound(instance_id=iuuid)
        self._note_instance(iuuid)
        return hardware.InstanceInfo(state=inst.get("power_state", power_state.NOSTATE),
                                     internal_id=inst.get("partition_uuid"))

    def get_num_instances(self):
        return len(self._read(self.client.instances))

    def poll_rebooting_instances(self, timeout, instances):
        """nova calls this with the instances it has seen rebooting for longer than
        `timeout`. One that powervmd no longer reboots and that is not running gets a
        HARD reboot (submitted, not awaited): its reboot was lost."""
        for instance in instances:
            if isinstance(instance, tuple):  # nova's generic test passes (inst, nwinfo)
                instance = instance[0]
            iuuid = _uuid(instance)
            try:
                inst = self.client.instance(iuuid)
            except (pvm_client.PowerVMDUnreachable, pvm_client.ApiError) as e:
                LOG.warning("powervmd: rebooting instance %s not checked: %s", iuuid, e)
                continue
            if inst is None or inst.get("rebooting"):
                continue
            if inst.get("power_state") == power_state.RUNNING:
                continue
            rid = self._request_id()
            params = {"instance": self._instance_params(instance), "reboot_type": "HARD"}
            try:
                op_id, _ = self.client.submit(
                    "reboot", iuuid, params,
                    self.idempotency_key(rid, "reboot", iuuid, "poll", params),
                    request_id=rid)
                LOG.warning("powervmd: instance %s stuck rebooting (%s): HARD reboot is "
                            "operation %d", iuuid, inst.get("state"), op_id)
            except (pvm_client.PowerVMDUnreachable, pvm_client.ApiError) as e:
                LOG.warning("powervmd: HARD reboot of %s not submitted: %s", iuuid, e)

    # ------------------------------------------------------------------ power
    def power_off(self, instance, timeout=0, retry_interval=0):
        params = {"instance": self._instance_params(instance), "timeout": max(0, timeout)}
        if retry_interval:
            params["retry_interval"] = retry_interval
        self.run_operation("power_off", instance, params)

    def power_on(self, context, instance, network_info, block_device_info=None,
                 accel_info=None):
        self.run_operation("power_on", instance,
                           {"instance": self._instance_params(instance)}, context)

    def reboot(self, context, instance, network_info, reboot_type, block_device_info=None,
               bad_volumes_callback=None, accel_info=None):
        self.run_operation("reboot", instance,
                           {"instance": self._instance_params(instance),
                            "reboot_type": str(reboot_type).upper()}, context)

    def resume_state_on_host_boot(self, context, instance, network_info,
                                  block_device_info=None):
        params = {"instance": self._instance_params(instance)}
        ps = _field(instance, "power_state")
        if ps is not None:
            params["power_state_before"] = ps
        else:
            params["power_state_before"] = power_state.RUNNING
        self.run_operation("resume_state_on_host_boot", instance, params, context)

    # ------------------------------------------------------------------ spawn / destroy
    @property
    def image_api(self):
        if self._image_api is None:
            self._image_api = glance.API()
        return self._image_api

    def _flavor(self, context, instance):
        if hasattr(instance, "obj_attr_is_set"):
            flavor = instance.flavor
        else:
            flavor = objects.Flavor.get_by_id(context, instance["instance_type_id"])
        extra = {}
        try:
            extra = dict(flavor.extra_specs or {})
        except Exception:
            pass
        return {"name": flavor.name, "flavorid": flavor.flavorid,
                "memory_mb": int(flavor.memory_mb), "vcpus": int(flavor.vcpus),
                "root_gb": int(flavor.root_gb or 0),
                "ephemeral_gb": int(flavor.ephemeral_gb or 0),
                "swap": int(flavor.swap or 0), "extra_specs": extra}

    @staticmethod
    def _image_meta_params(image_meta):
        out = {}
        for f in ("id", "name", "size", "disk_format", "container_format", "min_disk",
                  "min_ram", "checksum"):
            if image_meta.obj_attr_is_set(f):
                out[f] = _jsonable(getattr(image_meta, f))
        if image_meta.obj_attr_is_set("properties"):
            out["properties"] = _jsonable(image_meta.properties)
        return out

    def ensure_image(self, context, image_meta):
        """Streams the image from nova's image API into powervmd's cache unless it is
        there already; checked by powervmd against glance's os_hash (or md5 checksum)."""
        image_id = image_meta.id
        disk_format = image_meta.disk_format if image_meta.obj_attr_is_set(
            "disk_format") else None
        if disk_format != "raw":
            raise exception.ImageUnacceptable(
                image_id=image_id,
                reason="disk_format %s: powervmd takes raw images only" % disk_format)
        with pvm_exc.translate("spawn"):
            if self.client.image_cached(image_id):
                return "cached"
        meta = self.image_api.get(context, image_id)
        headers = {}
        algo, value = meta.get("os_hash_algo"), meta.get("os_hash_value")
        if not (algo and value) and meta.get("checksum"):
            algo, value = "md5", meta["checksum"]
        if algo and value:
            headers = {"os_hash_algo": algo, "os_hash_value": value}
        size = meta.get("size") or None
        path = "/v1/images/%s?wait=%g" % (image_id, min(300.0, CONF.powervmd.long_poll))
        limit = CONF.powervmd.operation_timeout or 3600
        start = time.monotonic()
        delay = 2.0
        while True:
            try:
                return self._upload_image(context, image_id, path, headers, size)
            except pvm_client.ApiError as e:
                # 409 conflict: another spawn on this host streams the same image now
                # (uploads of one id are exclusive); wait for it, then look again
                other_digest = ((e.body or {}).get("error") or {}).get("sha256")
                if e.status != 409 or e.code != "conflict" or other_digest or \
                        time.monotonic() - start > limit:
                    raise pvm_exc.from_api_error("spawn", None, e) from e
            LOG.info("powervmd: image %s is being uploaded by another request: waiting",
                     image_id)
            time.sleep(delay)
            delay = min(delay * 1.5, 15.0)
            with pvm_exc.translate("spawn"):
                if self.client.image_cached(image_id):
                    return "cached"

    def _upload_image(self, context, image_id, path, headers, size):
        try:
            up = self.client.upload(path, headers=headers, length=size)
        except pvm_client.PowerVMDUnreachable as e:
            raise pvm_exc.from_unreachable(e) from e
        try:
            self.image_api.download(context, image_id, data=up)
        except pvm_client.PowerVMDUnreachable as e:
            raise pvm_exc.from_unreachable(e) from e
        except Exception:
            up.abort()
            raise
        try:
            status, body = up.finish()
        except ValueError as e:
            raise exception.ImageUnacceptable(image_id=image_id, reason=str(e))
        except pvm_client.PowerVMDUnreachable as e:
            raise pvm_exc.from_unreachable(e) from e
        LOG.info("powervmd: image %s uploaded (%d bytes, %s)", image_id, up.sent, status)
        if status == 202 and body and body.get("operation"):
            self.finish_operation("spawn", None, body["operation"])
        return "uploaded"

    def _config_drive(self, context, instance, injected_files, admin_password,
                      network_info):
        """Builds the config drive with nova's InstanceMetadata and ConfigDriveBuilder
        and streams it to PUT /v1/config-drives/{uuid}."""
        extra_md = {}
        if admin_password:
            extra_md["admin_pass"] = admin_password
        inst_md = instance_metadata.InstanceMetadata(
            instance, content=injected_files, extra_md=extra_md,
            network_info=network_info)
        tmp = tempfile.mkdtemp(prefix="powervmd-cfg-")
        try:
            iso = os.path.join(tmp, "cfg.iso")
            with configdrive.ConfigDriveBuilder(instance_md=inst_md) as cdb:
                cdb.make_drive(iso)
            size = os.path.getsize(iso) if os.path.exists(iso) else 0
            with pvm_exc.translate("spawn", _uuid(instance)):
                up = self.client.upload("/v1/config-drives/%s" % _uuid(instance),
                                        length=size)
                with open(iso, "rb") as f:
                    while True:
                        chunk = f.read(1 << 20)
                        if not chunk:
                            break
                        up.write(chunk)
                up.finish()
            return size
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @staticmethod
    def _neutron_events(network_info):
        return [("network-vif-plugged", vif["id"]) for vif in network_info or []
                if vif.get("active", True) is False]

    def _as_object(self, context, instance):
        if isinstance(instance, objects.Instance):
            return instance
        return objects.Instance.get_by_uuid(context, _uuid(instance))

    def spawn(self, context, instance, image_meta, injected_files, admin_password,
              allocations, network_info=None, block_device_info=None, power_on=True,
              accel_info=None):
        import eventlet.timeout  # nova-compute's green runtime (wait_for_instance_event)

        iuuid = _uuid(instance)
        self._note_instance(iuuid)
        inst_obj = self._as_object(context, instance)
        if not image_meta.obj_attr_is_set("id") or not image_meta.id:
            raise exception.InstanceDeployFailure(
                reason="boot from volume is not supported by powervmd yet")
        self.ensure_image(context, image_meta)
        want_cd = configdrive.required_by(inst_obj)
        if want_cd:
            self._config_drive(context, inst_obj, injected_files, admin_password,
                               network_info)
        timeout = CONF.vif_plugging_timeout
        events = self._neutron_events(network_info) if (power_on and timeout) else []
        params = {
            "instance": self._instance_params(instance),
            "flavor": self._flavor(context, instance),
            "image_meta": self._image_meta_params(image_meta),
            "network_info": network_info_params(network_info),
            "block_device_info": block_device_info_params(block_device_info),
            "config_drive": bool(want_cd),
            # powervmd's own gate: a little longer than the shim's wait, so that it opens
            # (or fails) by itself only when the shim is gone.
            "network_plugged_timeout": min(3600, timeout + 60) if events else 0,
            "network_plugged_fatal": bool(CONF.vif_plugging_is_fatal),
        }
        rid = self._request_id(context)
        key = self.idempotency_key(rid, "spawn", iuuid, params=params)
        op_id = None
        try:
            with self.virtapi.wait_for_instance_event(
                    instance, events, deadline=timeout,
                    error_callback=self._neutron_failed_callback):
                with pvm_exc.translate("spawn", iuuid):
                    op_id, existing = self.client.submit("spawn", iuuid, params, key,
                                                         request_id=rid)
                LOG.info("powervmd: spawn of %s is operation %d%s", iuuid, op_id,
                         " (already submitted)" if existing else "")
        except exception.VirtualInterfaceCreateException:
            self._abandon_spawn(op_id, iuuid, "neutron reported a failed vif plug")
            raise
        except eventlet.timeout.Timeout:
            LOG.warning("powervmd: timed out waiting for neutron's network-vif-plugged "
                        "events of %s after %s s", iuuid, timeout)
            if CONF.vif_plugging_is_fatal:
                self._abandon_spawn(op_id, iuuid, "network-vif-plugged timeout")
                raise exception.VirtualInterfaceCreateException()
        self._signal_plugged(op_id)
        self.finish_operation("spawn", iuuid, op_id)
        if not power_on:
            self.power_off(instance, timeout=0)

    def _neutron_failed_callback(self, event_name, instance):
        LOG.error("powervmd: neutron reported failure on event %s for instance %s",
                  event_name, _uuid(instance))
        if CONF.vif_plugging_is_fatal:
            raise exception.VirtualInterfaceCreateException()

    def _signal_plugged(self, op_id):
        try:
            self.client.signal(op_id, "network_plugged", True)
        except pvm_client.ApiError as e:
            if e.status != 409:  # 409: the operation does not wait (any more)
                raise pvm_exc.from_api_error("spawn", None, e)
        except pvm_client.PowerVMDUnreachable as e:
            raise pvm_exc.from_unreachable(e)

    def _abandon_spawn(self, op_id, iuuid, why):
        if op_id is None:
            return
        LOG.warning("powervmd: cancelling spawn operation %d of %s: %s", op_id, iuuid, why)
        try:
            self.client.cancel(op_id)
            self.client.wait(op_id, timeout=CONF.powervmd.operation_timeout)
        except (pvm_client.PowerVMDUnreachable, pvm_client.ApiError,
                pvm_client.OperationTimeout) as e:
            LOG.warning("powervmd: cancel of operation %d: %s", op_id, e)

    def destroy(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, destroy_secrets=True):
        params = {"instance": self._instance_params(instance),
                  "network_info": network_info_params(network_info),
                  "block_device_info": block_device_info_params(block_device_info),
                  "destroy_disks": bool(destroy_disks)}
        self.run_operation("destroy", instance, params, context)
        self._partition_to_instance.pop(pvm_events.partition_uuid_of(_uuid(instance)), None)

    def cleanup(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, migrate_data=None, destroy_vifs=True,
                destroy_secrets=True):
        """destroy removes everything of the instance in one operation, and a partition
        already gone is success: cleanup is the same operation (nova calls it after
        destroy, and on hosts an instance left)."""
        params = {"instance": self._instance_params(instance),
                  "network_info": network_info_params(network_info),
                  "block_device_info": block_device_info_params(block_device_info),
                  "destroy_disks": bool(destroy_disks)}
        self.run_operation("destroy", instance, params, context, target="cleanup")

    # ------------------------------------------------------------------ networking
    def attach_interface(self, context, instance, image_meta, vif):
        self.run_operation("attach_interface", instance,
                           {"instance": self._instance_params(instance),
                            "vif": vif_params(vif)}, context, target=vif["id"])

    def detach_interface(self, context, instance, vif):
        self.run_operation("detach_interface", instance,
                           {"instance": self._instance_params(instance),
                            "vif": vif_params(vif)}, context, target=vif["id"])

    def plug_vifs(self, instance, network_info):
        self.run_operation("plug_vifs", instance,
                           {"instance": self._instance_params(instance),
                            "network_info": network_info_params(network_info)},
                           target=",".join(sorted(v["id"] for v in network_info or [])))

    def unplug_vifs(self, instance, network_info):
        self.run_operation("unplug_vifs", instance,
                           {"instance": self._instance_params(instance),
                            "network_info": network_info_params(network_info)},
                           target=",".join(sorted(v["id"] for v in network_info or [])))


for _name in UNSUPPORTED:
    setattr(PowerVMDriver, _name, _unsupported(_name))
del _name


def dumps(obj):  # for the tests and tools: what the shim sends
    return json.dumps(_jsonable(obj), sort_keys=True)
