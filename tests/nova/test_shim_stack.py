"""The shim against a real powervmd + pvmsim (scripts/stack, HMC mode): the power
operations, reads, idempotency, exceptions, lifecycle events with the reboot ordering
guard, init_host's reconcile, and the service disabled while powervmd is down and enabled
again when it returns. Partitions are made with the test_steps operation (the stack
enables test operations), so these run before powervmd has spawn.
"""
import hashlib
import json
import shutil
import os
import random
from unittest import mock

import shimenv

shim = shimenv.import_shim()

from nova.compute import power_state  # noqa: E402
from nova.compute import vm_states  # noqa: E402
from nova import context as nova_context  # noqa: E402
from nova import exception  # noqa: E402
from nova import objects  # noqa: E402
from nova import test  # noqa: E402
from nova.tests import fixtures as nova_fixtures  # noqa: E402
from nova.virt import event as virtevent  # noqa: E402
from nova.virt import fake  # noqa: E402

from nova.virt.powervmd import driver as pvm_driver  # noqa: E402

stacklib = shimenv.stacklib
check, wait_until = stacklib.check, stacklib.wait_until


class ShimStackTestCase(test.TestCase):
    stack = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.rng, cls.seed = stacklib.seed_rng("shim stack tests")
        cls.stack = shimenv.ModeStack("shim-stack", "hmc", job_ms=200, workers=4)
        try:
            cls.stack.up()
        except BaseException:  # tearDownClass does not run when setUpClass fails
            cls.stack.down()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.stack is not None:
            cls.stack.failed = bool(os.environ.get("PVM_KEEP_STACK"))
            cls.stack.down()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        if not self.stack.healthy():  # a test that killed powervmd failed half-way
            self.stack.start_powervmd()
        self.flags(api_socket=self.stack.sock, request_timeout=20.0, long_poll=5.0,
                   event_delay=0.3, health_interval=0.3, group="powervmd")
        self.events = []
        self.drv = pvm_driver.PowerVMDriver(fake.FakeVirtAPI())
        self.drv.register_event_listener(self.events.append)
        self.addCleanup(self.drv.cleanup_host, "myhost")
        self.ctxt = nova_context.get_admin_context()
        self.ctxt.update_store()  # the current context, as nova's RPC layer sets it

    # ---- helpers ----
    def new_uuid(self, high):
        """A fresh instance UUID; high: its first hex digit >= 8, so that the partition
        UUID differs from it (the top bit is cleared)."""
        u = stacklib.new_uuid(self.rng)
        first = self.rng.choice("89abcdef" if high else "01234567")
        return first + u[1:]

    def nova_instance(self, uuid, ps=power_state.SHUTDOWN, task_state=None, **more):
        inst = objects.Instance(context=self.ctxt, uuid=uuid, project_id="p", user_id="u",
                                host="myhost", power_state=ps, vm_state=vm_states.ACTIVE,
                                task_state=task_state, display_name="vm-%s" % uuid[:8],
                                hostname="vm-%s" % uuid[:8], **more)
        inst.create()
        return inst

    def partition(self, uuid):
        r = self.stack.submit({"type": "test_steps", "instance_uuid": uuid, "params": {}})
        check(r.status == 202, "test_steps: %r" % r)
        op = self.stack.wait_terminal([r.json["id"]], 60, "test_steps")[r.json["id"]]
        check(op["state"] == "succeeded", "test_steps: %s" % op["error"])
        return "pvmtest-" + uuid[:8]

    def lpar_state(self, uuid):
        return self.stack.partitions().get(stacklib.lpar_uuid(uuid))

    def ops_of(self, uuid, op_type):
        return self.stack.list_ops(instance=uuid, type=op_type)

    def api_op(self, op_type, uuid, **params):
        p = {"instance": {"uuid": uuid}}
        p.update(params)
        r = self.stack.submit({"type": op_type, "instance_uuid": uuid, "params": p})
        check(r.status == 202, "%s: %r" % (op_type, r))
        return r.json["id"]

    # ---- tests ----
    def test_power_operations(self):
        uuid = self.new_uuid(high=True)
        name = self.partition(uuid)
        inst = self.nova_instance(uuid)
        self.assertEqual("not activated", self.lpar_state(uuid))

        self.drv.power_on(self.ctxt, inst, [])
        self.assertEqual("running", self.lpar_state(uuid))
        wait_until(lambda: self.drv.get_info(inst).state == power_state.RUNNING, 20,
                   "get_info to say RUNNING")
        self.drv.power_on(self.ctxt, inst, [])  # the same request again: no new operation
        self.assertEqual(1, len(self.ops_of(uuid, "power_on")))

        self.drv.power_off(inst, timeout=10, retry_interval=2)
        self.assertEqual("not activated", self.lpar_state(uuid))
        op = self.ops_of(uuid, "power_off")[0]
        self.assertEqual(10, op["params"]["timeout"])
        self.assertEqual(self.ctxt.global_id, op["request_id"])

        self.drv.reboot(self.ctxt, inst, [], "HARD")  # off: powered on, as nova expects
        self.assertEqual("running", self.lpar_state(uuid))
        ctx2 = nova_context.get_admin_context()
        self.drv.reboot(ctx2, inst, [], "SOFT")
        self.assertEqual("running", self.lpar_state(uuid))
        self.assertEqual(2, len(self.ops_of(uuid, "reboot")))

        ctx3 = nova_context.get_admin_context()
        ctx3.update_store()
        self.drv.power_off(inst, timeout=0)
        self.assertEqual("not activated", self.lpar_state(uuid))
        inst.power_state = power_state.RUNNING  # what nova recorded before the host boot
        self.drv.resume_state_on_host_boot(ctx3, inst, [])
        self.assertEqual("running", self.lpar_state(uuid))

        self.assertIn(name, self.drv.list_instances())
        self.assertIn(uuid, self.drv.list_instance_uuids())
        self.assertTrue(self.drv.instance_exists(inst))

    def test_errors(self):
        ghost = objects.Instance(uuid=self.new_uuid(high=False), power_state=1)
        self.assertRaises(exception.InstanceNotFound, self.drv.power_on, self.ctxt, ghost,
                          [])
        self.assertRaises(exception.InstanceNotFound, self.drv.get_info, ghost)
        self.assertFalse(self.drv.instance_exists(ghost))
        e = self.assertRaises(exception.InstanceRebootFailure, self.drv.reboot, self.ctxt,
                              ghost, [], "WARM")
        self.assertIn("params.reboot_type", str(e))

    def test_resources(self):
        nodes = self.drv.get_available_nodes()
        host = self.stack.api("GET", "/v1/host").json
        self.assertEqual([host["hypervisor_hostname"]], nodes)
        res = self.drv.get_available_resource(nodes[0])
        self.assertEqual((host["vcpus"], host["memory_mb"], host["memory_mb_used"]),
                         (res["vcpus"], res["memory_mb"], res["memory_mb_used"]))

    def test_lifecycle_events_and_reboot_ordering(self):
        uuid = self.new_uuid(high=True)
        self.partition(uuid)
        inst = self.nova_instance(uuid, ps=power_state.SHUTDOWN)
        self.drv.init_host("myhost")
        # started outside nova: one STARTED event
        self.api_op("power_on", uuid)
        wait_until(lambda: any(e.uuid == uuid for e in self.events), 30,
                   "a lifecycle event for %s" % uuid)
        evs = [e for e in self.events if e.uuid == uuid]
        self.assertEqual([virtevent.EVENT_LIFECYCLE_STARTED], [e.transition for e in evs])

        # nova now records RUNNING; a reboot's stop and start within the delay: no event
        inst.power_state = power_state.RUNNING
        inst.save()
        self.flags(event_delay=6.0, group="powervmd")
        self.drv.cleanup_host("myhost")
        self.drv.init_host("myhost")
        life = self.drv._listener.lifecycle
        del self.events[:]
        op_id = self.api_op("reboot", uuid, reboot_type="HARD")
        op = self.stack.wait_terminal([op_id], 60, "reboot")[op_id]
        self.assertEqual("succeeded", op["state"])
        wait_until(lambda: life.replaced >= 1 and not life.pending, 60,
                   "the reboot's partition events to be settled")
        self.assertEqual([], [e for e in self.events if e.uuid == uuid],
                         "a reboot must not reach nova as stop/start")

    def test_init_host_reconciles(self):
        unknown = self.new_uuid(high=False)
        r = self.stack.submit({"type": "test_steps", "instance_uuid": unknown,
                               "params": {"gate": True}})
        self.assertEqual(202, r.status)
        op_id = r.json["id"]
        wait_until(lambda: self.stack.op(op_id)["state"] == "waiting", 30,
                   "the gated operation to wait")
        self.drv.init_host("myhost")
        op = self.stack.wait_terminal([op_id], 60, "the reconciled operation")[op_id]
        self.assertEqual("cancelled", op["state"])

    def test_service_disabled_while_powervmd_is_down(self):
        svc = objects.Service(context=self.ctxt, host="myhost", binary="nova-compute",
                              topic="compute")
        svc.create()
        self.drv.init_host("myhost")

        def service():
            return objects.Service.get_by_compute_host(self.ctxt, "myhost")
        self.assertFalse(service().disabled)
        self.stack.kill_powervmd()
        try:
            wait_until(lambda: service().disabled, 30, "the service to be disabled")
            self.assertTrue(service().disabled_reason.startswith(
                "AUTO: powervmd is unreachable"), service().disabled_reason)
            self.assertRaises(exception.HypervisorUnavailable, self.drv.list_instances)
        finally:
            self.stack.start_powervmd()
        wait_until(lambda: not service().disabled, 60, "the service to be enabled again")
        self.assertIsNone(service().disabled_reason)
        # an operator's disablement is never undone by the health check
        s = service()
        s.disabled, s.disabled_reason = True, "operator maintenance"
        s.save()
        self.stack.kill_powervmd()
        try:
            wait_until(lambda: self.drv.health["ok"] is False, 30, "the shim to see it")
        finally:
            self.stack.start_powervmd()
        wait_until(lambda: self.drv.health["ok"] is True, 60, "the shim to see it back")
        self.assertEqual("operator maintenance", service().disabled_reason)


    def test_spawn_config_drive_interfaces_destroy(self):
        need = {"spawn", "destroy", "attach_interface", "detach_interface"}
        missing = need - self.stack.known_types()
        if missing:
            reason = "PENDING DAEMON: powervmd has no %s operation yet" % ", ".join(
                sorted(missing))
            if os.environ.get("PVM_SHIM_REQUIRE_ALL"):
                self.fail(reason)
            self.skipTest(reason)
        glance = self.useFixture(nova_fixtures.GlanceFixture(self))
        image_id = "cedef40a-ed67-4d10-800e-17455edce175"
        data = bytes(self.rng.getrandbits(8) for _ in range(4096)) * 64
        glance.images[image_id].update(
            disk_format="raw", container_format="bare", size=len(data),
            os_hash_algo="sha256", os_hash_value=hashlib.sha256(data).hexdigest())
        glance._imagedata[image_id] = data
        uuid = self.new_uuid(high=True)
        flavor = objects.Flavor(name="tiny", flavorid="t1", memory_mb=512, vcpus=1,
                                root_gb=1, ephemeral_gb=0, swap=0, extra_specs={})
        inst = self.nova_instance(uuid, ps=power_state.NOSTATE, flavor=flavor,
                                  old_flavor=None, new_flavor=None, config_drive="True",
                                  metadata={}, system_metadata={})
        image_meta = objects.ImageMeta.from_dict(
            {k: v for k, v in glance.images[image_id].items()
             if k not in ("os_hash_algo", "os_hash_value")})

        # nova's real ConfigDriveBuilder writes the ISO with genisoimage (scripts/bootstrap)
        self.assertTrue(shutil.which("genisoimage"), "genisoimage is not installed")
        with mock.patch("nova.network.security_group_api.get_instance_security_groups",
                        return_value=[]):
            self.drv.spawn(self.ctxt, inst, image_meta, [], "pw", {}, network_info=[])
        self.assertEqual("running", self.lpar_state(uuid))
        img = self.stack.api("GET", "/v1/images/%s" % image_id)
        self.assertEqual(200, img.status)
        self.assertEqual(hashlib.sha256(data).hexdigest(), img.json["sha256"])
        spawn = self.ops_of(uuid, "spawn")[0]
        media = spawn["result"].get("config_drive") or ""
        self.assertTrue(media.startswith("cfg_"), spawn["result"])
        # the media pvmsim holds is the ISO genisoimage made of nova's metadata: uploaded
        # with its SHA-256 (pvmsim checks it), far larger than any stand-in
        found = []

        def walk(o):
            if isinstance(o, dict):
                if media in (o.get("name"), o.get("MediaName")):
                    found.append(o)
                for v in o.values():
                    walk(v)
            elif isinstance(o, list):
                for v in o:
                    walk(v)
        walk(self.stack.sim_state())
        self.assertTrue(found, "no media %s in pvmsim" % media)
        sizes = [int((f.get("contents") or {}).get("size") or 0) for f in found]
        self.assertTrue(max(sizes) >= 32768, "config drive media: %r" % found)
        self.assertEqual(power_state.RUNNING, self.drv.get_info(inst).state)

        mac = "fa:16:3e:%02x:%02x:%02x" % tuple(self.rng.getrandbits(8) for _ in range(3))
        vif = {"id": stacklib.new_uuid(self.rng), "address": mac, "type": "pvm_sea",
               "details": {}, "network": {"meta": {"vlan": 100}}}
        self.drv.attach_interface(self.ctxt, inst, image_meta, vif)
        self.drv.attach_interface(self.ctxt, inst, image_meta, vif)  # the same call again
        self.assertEqual(1, len(self.ops_of(uuid, "attach_interface")))
        self.drv.detach_interface(self.ctxt, inst, vif)
        bad = dict(vif, type="ovs", id=stacklib.new_uuid(self.rng))
        e = self.assertRaises(exception.InterfaceAttachFailed, self.drv.attach_interface,
                              self.ctxt, inst, image_meta, bad)
        self.assertIn("params.vif.type", str(e.powervmd_error))

        self.drv.destroy(self.ctxt, inst, [])
        self.assertIsNone(self.lpar_state(uuid))
        self.assertFalse(self.drv.instance_exists(inst))
        self.drv.destroy(nova_context.get_admin_context(), inst, [])  # gone: success


assert random
