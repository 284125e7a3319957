"""The shim's own unit tests: the client (HTTP over the Unix socket, errors, lost
answers, long-polls, streamed uploads), idempotency keys, the lifecycle event ordering,
the exception mapping, the service disable/enable, and the spawn flow (image upload,
config drive, the network_plugged gate) against a scripted fake powervmd (fakedaemon.py).
"""
import hashlib
import itertools
import json
import os
import threading
import time
from unittest import mock

import shimenv

shim = shimenv.import_shim()

import eventlet.timeout  # noqa: E402

from nova.compute import power_state  # noqa: E402
from nova.compute import task_states  # noqa: E402
from nova import context as nova_context  # noqa: E402
from nova import exception  # noqa: E402
from nova import objects  # noqa: E402
from nova import test  # noqa: E402
from nova.tests.unit import fake_instance  # noqa: E402
from nova.tests.unit import fake_network  # noqa: E402
from nova.tests.unit import utils as test_utils  # noqa: E402
from nova.virt import event as virtevent  # noqa: E402
from nova.virt import fake  # noqa: E402

from nova.virt.powervmd import client as pvm_client  # noqa: E402
from nova.virt.powervmd import driver as pvm_driver  # noqa: E402
from nova.virt.powervmd import events as pvm_events  # noqa: E402
from nova.virt.powervmd import exceptions as pvm_exc  # noqa: E402

import fakedaemon  # noqa: E402

UUID = "9b2c4d6e-8f10-4a3b-9c5d-7e9f1a2b3c4d"
PART = "1B2C4D6E-8F10-4A3B-9C5D-7E9F1A2B3C4D"


class OpsDaemon:
    """A fake powervmd that keeps operations by idempotency key. outcome(type, params) ->
    (state, result, error, error_code) decides how each ends; GET ?wait answers at once
    with the final state after `polls` polls."""

    def __init__(self, outcome=None, polls=1):
        self.ops = {}
        self.by_key = {}
        self.ids = itertools.count(1)
        self.outcome = outcome or (lambda t, p: ("succeeded", {}, None, None))
        self.polls = polls
        self.signals = []
        self.cancels = []
        self.images = set()
        self.uploads = {}
        self.instances = {}
        self.host = {"vcpus": 400, "vcpus_used": 1, "memory_mb": 524288,
                     "memory_mb_used": 20480, "hypervisor_type": "phyp",
                     "hypervisor_version": 7, "hypervisor_hostname": "sim-ms",
                     "nodes": ["sim-ms"], "cpu_info": "{}", "state": "operating",
                     "supported_instances": [["ppc64le", "phyp", "hvm"]],
                     "inventory": {
                         "VCPU": {"total": 400, "reserved": 25, "min_unit": 1,
                                  "max_unit": 400, "step_size": 1,
                                  "allocation_ratio": 1.0},
                         "MEMORY_MB": {"total": 524288, "reserved": 20480, "min_unit": 1,
                                       "max_unit": 524288, "step_size": 1,
                                       "allocation_ratio": 1.0}}}
        self.healthy = True

    def __call__(self, req):
        p = req.path
        if p == "/healthz":
            return (200, {"status": "ready"}) if self.healthy else \
                (503, {"status": "starting"})
        if p == "/v1/host":
            return 200, self.host
        if p == "/v1/operations" and req.method == "POST":
            b = req.json
            key = b["idempotency_key"]
            if key in self.by_key:
                op = self.ops[self.by_key[key]]
                if op["params"] != b["params"] or op["type"] != b["type"]:
                    return 409, {"error": {"code": "conflict", "message": "key",
                                           "existing_id": op["id"]}}
                return 200, {"id": op["id"], "state": op["state"], "existing": True}
            i = next(self.ids)
            self.ops[i] = {"id": i, "type": b["type"], "params": b["params"],
                           "instance_uuid": b.get("instance_uuid"), "state": "queued",
                           "request_id": b.get("request_id"), "key": key, "polls": 0,
                           "result": {}, "error": None, "error_code": None}
            self.by_key[key] = i
            return 202, {"id": i, "state": "queued"}
        if p.startswith("/v1/operations/"):
            parts = p.split("/")
            op = self.ops.get(int(parts[3]))
            if op is None:
                return 404, {"error": {"code": "not_found", "message": "no operation"}}
            if len(parts) == 5 and parts[4] == "signal":
                self.signals.append((op["id"], req.json))
                if op["state"] in pvm_client.TERMINAL:
                    return 409, {"error": {"code": "conflict", "message": "not active"}}
                return 200, {"id": op["id"], "signal": req.json["name"]}
            if len(parts) == 5 and parts[4] == "cancel":
                self.cancels.append(op["id"])
                op["state"] = "cancelled"
                return 200, {"id": op["id"], "state": "cancelled"}
            op["polls"] += 1
            if op["state"] not in pvm_client.TERMINAL and op["polls"] >= self.polls:
                st, res, err, code = self.outcome(op["type"], op["params"])
                op.update(state=st, result=res, error=err, error_code=code)
            elif op["state"] not in pvm_client.TERMINAL:
                op["state"] = "waiting"
            return 200, op
        if p.startswith("/v1/instances/"):
            u = p.rsplit("/", 1)[1].lower()
            inst = self.instances.get(u)
            return (200, inst) if inst else (404, {"error": {"code": "not_found",
                                                             "message": "unknown"}})
        if p == "/v1/instances":
            return 200, {"instances": list(self.instances.values())}
        if p.startswith("/v1/images/"):
            iid = p.rsplit("/", 1)[1]
            if req.method == "GET":
                return (200, {"id": iid}) if iid in self.images else \
                    (404, {"error": {"code": "not_found", "message": "not cached"}})
            self.uploads[iid] = req
            self.images.add(iid)
            return 201, {"id": iid, "size": len(req.body)}
        if p.startswith("/v1/config-drives/"):
            self.uploads[p] = req
            return 201, {"size": len(req.body)}
        if p == "/v1/reconcile":
            return 200, {"cancelled": [], "kept": [], "unknown_instances": []}
        if p == "/v1/events":
            return 200, {"events": [], "last": int(req.query.get("after", 0)),
                         "missed": False}
        return 404, {"error": {"code": "not_found", "message": "no route %s" % p}}


class ShimTestCase(test.TestCase):
    def setUp(self):
        super().setUp()
        self.daemon = OpsDaemon()
        self.fake = fakedaemon.FakeDaemon(self.daemon)
        self.addCleanup(self.fake.stop)
        self.flags(api_socket=self.fake.sock, request_timeout=5.0, long_poll=1.0,
                   event_delay=0.0, group="powervmd")
        self.drv = pvm_driver.PowerVMDriver(fake.FakeVirtAPI())
        self.ctxt = nova_context.RequestContext("u", "p", request_id="req-1234")
        self.inst = fake_instance.fake_instance_obj(self.ctxt, uuid=UUID, id=42,
                                                    power_state=power_state.RUNNING)


class TestClient(ShimTestCase):
    def test_error_answer_names_code_and_field(self):
        self.daemon.outcome = None
        self.fake.handler = lambda r: (400, {"error": {"code": "invalid", "field":
                                                       "params.vcpus", "message": "bad"}})
        c = self.drv.client
        e = self.assertRaises(pvm_client.ApiError, c.request, "POST", "/v1/operations", {})
        self.assertEqual((400, "invalid", "params.vcpus"), (e.status, e.code, e.field))

    def test_unreachable(self):
        c = pvm_client.Client(os.path.join(self.fake.dir, "nothing.sock"), timeout=0.5)
        e = self.assertRaises(pvm_client.PowerVMDUnreachable, c.host)
        self.assertIn("nothing.sock", str(e))
        nova_e = pvm_exc.from_unreachable(e)
        self.assertIsInstance(nova_e, exception.HypervisorUnavailable)
        self.assertIn("nothing.sock", str(nova_e))

    def test_lost_answer_resubmits_with_same_key(self):
        dropped = []

        def handler(req):
            if req.method == "POST" and not dropped:
                dropped.append(req)
                self.daemon(req)  # journaled, then the answer is lost
                return fakedaemon.DROP
            return self.daemon(req)
        self.fake.handler = handler
        self.drv.power_on(self.ctxt, self.inst, [])
        posts = self.fake.of("POST", "/v1/operations")
        self.assertEqual(2, len(posts))
        self.assertEqual(posts[0].json["idempotency_key"], posts[1].json["idempotency_key"])
        self.assertEqual(1, len(self.daemon.ops), "the retry must not create a second op")

    def test_wait_long_polls_until_terminal(self):
        self.daemon.polls = 4
        self.drv.power_off(self.inst, timeout=30, retry_interval=5)
        gets = self.fake.of("GET", "/v1/operations/1")
        self.assertEqual(4, len(gets))
        self.assertTrue(all(float(g.query["wait"]) > 0 for g in gets))
        op = self.daemon.ops[1]
        self.assertEqual({"timeout": 30, "retry_interval": 5}, {
            k: op["params"][k] for k in ("timeout", "retry_interval")})
        self.assertEqual(UUID, op["params"]["instance"]["uuid"])
        self.assertEqual("req-1234", op["request_id"])

    def test_operation_timeout(self):
        self.daemon.polls = 10 ** 6
        self.flags(operation_timeout=1, group="powervmd")
        self.assertRaises(exception.InstancePowerOnFailure, self.drv.power_on, self.ctxt,
                          self.inst, [])

    def test_upload_chunked_and_sized(self):
        c = self.drv.client
        up = c.upload("/v1/images/img1", headers={"os_hash_algo": "sha256"})
        for i in range(5):
            up.write(b"x" * (1000 + i))
        status, body = up.finish()
        self.assertEqual(201, status)
        req = self.daemon.uploads["img1"]
        self.assertEqual(5010, len(req.body))
        self.assertEqual("chunked", req.headers["Transfer-Encoding"])
        self.assertEqual("sha256", req.headers["os_hash_algo"])
        up = c.upload("/v1/images/img2", length=10)
        up.write(b"0123456789")
        up.finish()
        self.assertEqual(b"0123456789", self.daemon.uploads["img2"].body)
        up = c.upload("/v1/images/img3", length=10)
        up.write(b"short")
        self.assertRaises(ValueError, up.finish)


class TestLoading(test.NoDBTestCase):
    def test_nova_loads_compute_driver_powervmd(self):
        from nova.virt import driver as nova_driver
        self.flags(api_socket="/nonexistent/api.sock", group="powervmd")
        drv = nova_driver.load_compute_driver(fake.FakeVirtAPI(),
                                              "powervmd.PowerVMDriver")
        self.assertEqual("PowerVMDriver", type(drv).__name__)
        self.assertEqual("nova.virt.powervmd.driver", type(drv).__module__)
        self.assertEqual("/nonexistent/api.sock", drv.client.socket_path)


class TestIdempotency(ShimTestCase):
    def test_key_parts(self):
        k = pvm_driver.PowerVMDriver.idempotency_key("req-1", "attach_interface", UUID,
                                                      "port-9")
        self.assertEqual("nova:req-1:attach_interface:%s:port-9" % UUID, k)
        self.assertLessEqual(len(pvm_driver.PowerVMDriver.idempotency_key(
            "r" * 300, "x", UUID, params={"a": 1})), 255)
        key = pvm_driver.PowerVMDriver.idempotency_key
        inst = {"uuid": UUID, "power_state": 1}
        a = key("req-1", "destroy", UUID, params={"instance": inst, "network_info": []})
        b = key("req-1", "destroy", UUID, params={"instance": dict(inst, power_state=4),
                                                  "network_info": []})
        c = key("req-1", "destroy", UUID, params={"instance": inst,
                                                  "network_info": [{"id": "p"}]})
        self.assertEqual(a, b, "the instance's moving states are not part of the key")
        self.assertNotEqual(a, c, "other arguments are another call")
        self.assertTrue(a.startswith("nova:req-1:destroy:%s:" % UUID))

    def test_same_call_twice_is_one_operation(self):
        self.drv.reboot(self.ctxt, self.inst, [], "SOFT")
        self.drv.reboot(self.ctxt, self.inst, [], "SOFT")
        self.assertEqual(1, len(self.daemon.ops))
        self.assertEqual(2, len(self.fake.of("POST", "/v1/operations")))
        # another request of nova is another operation
        other = nova_context.RequestContext("u", "p", request_id="req-5678")
        self.drv.reboot(other, self.inst, [], "HARD")
        self.assertEqual(2, len(self.daemon.ops))

    def test_global_request_id_wins(self):
        ctx = nova_context.RequestContext("u", "p", request_id="req-local",
                                          global_request_id="req-global")
        self.drv.power_on(ctx, self.inst, [])
        self.assertIn("req-global", self.daemon.ops[1]["key"])

    def test_key_from_current_context_when_nova_passes_none(self):
        # power_off has no context argument: the one nova's RPC layer made current is used
        nova_context.RequestContext("u", "p", request_id="req-current", overwrite=True)
        self.drv.power_off(self.inst)
        self.assertTrue(self.daemon.ops[1]["key"].startswith(
            "nova:req-current:power_off:%s:" % UUID), self.daemon.ops[1]["key"])

    def test_targets_differ_per_port(self):
        vif = {"id": "port-1", "address": "aa:bb:cc:dd:ee:01", "type": "ovs",
               "details": {}, "network": {"meta": {"vlan": 7}}}
        self.drv.attach_interface(self.ctxt, self.inst, None, vif)
        self.drv.attach_interface(self.ctxt, self.inst, None, dict(vif, id="port-2"))
        self.assertEqual(2, len(self.daemon.ops))
        self.assertIn(":port-1:", self.daemon.ops[1]["key"])
        self.assertEqual(7, self.daemon.ops[1]["params"]["vif"]["details"]["vlan"])


class TestExceptions(ShimTestCase):
    CASES = {
        "power_off": (exception.InstancePowerOffFailure, lambda d, c, i: d.power_off(i)),
        "power_on": (exception.InstancePowerOnFailure,
                     lambda d, c, i: d.power_on(c, i, [])),
        "reboot": (exception.InstanceRebootFailure,
                   lambda d, c, i: d.reboot(c, i, [], "HARD")),
        "resume_state_on_host_boot": (exception.InstancePowerOnFailure,
                                      lambda d, c, i: d.resume_state_on_host_boot(c, i, [])),
        "destroy": (exception.InstanceTerminationFailure,
                    lambda d, c, i: d.destroy(c, i, [])),
        "attach_interface": (exception.InterfaceAttachFailed,
                             lambda d, c, i: d.attach_interface(c, i, None, {"id": "p"})),
        "detach_interface": (exception.InterfaceDetachFailed,
                             lambda d, c, i: d.detach_interface(c, i, {"id": "p"})),
        "plug_vifs": (exception.InterfaceAttachFailed,
                      lambda d, c, i: d.plug_vifs(i, [{"id": "p"}])),
        "unplug_vifs": (exception.VirtualInterfaceUnplugException,
                        lambda d, c, i: d.unplug_vifs(i, [{"id": "p"}])),
    }

    def test_failed_operation_per_type(self):
        self.daemon.outcome = lambda t, p: ("failed", {}, "HSCL1234 job failed", "HSCL1234")
        for op_type, (exc, call) in self.CASES.items():
            e = self.assertRaises(exc, call, self.drv, self.ctxt, self.inst)
            self.assertEqual(op_type, e.powervmd_operation["type"])
            if "reason" in e.kwargs:
                self.assertIn("HSCL1234", str(e))

    def test_instance_not_found(self):
        self.daemon.outcome = lambda t, p: ("failed", {}, "no partition",
                                            "instance_not_found")
        for op_type, (exc, call) in self.CASES.items():
            e = self.assertRaises(exception.InstanceNotFound, call, self.drv, self.ctxt,
                                  self.inst)
            self.assertIn(UUID, str(e))

    def test_cancelled_operation_is_a_failure(self):
        self.daemon.outcome = lambda t, p: ("cancelled", {}, "cancelled by reconcile", None)
        self.assertRaises(exception.InstanceRebootFailure, self.drv.reboot, self.ctxt,
                          self.inst, [], "SOFT")

    def test_refused_params(self):
        self.fake.handler = lambda r: (400, {"error": {
            "code": "invalid", "field": "params.reboot_type", "message": "SOFT or HARD"}})
        e = self.assertRaises(exception.InstanceRebootFailure, self.drv.reboot, self.ctxt,
                              self.inst, [], "WARM")
        self.assertIn("params.reboot_type", str(e))

    def test_get_info(self):
        self.assertRaises(exception.InstanceNotFound, self.drv.get_info, self.inst)
        self.daemon.instances[UUID] = {"uuid": PART, "partition_uuid": PART,
                                       "state": "running", "power_state": 1,
                                       "name": "instance-0000002a"}
        info = self.drv.get_info(self.inst)
        self.assertEqual(power_state.RUNNING, info.state)
        self.assertEqual(["instance-0000002a"], self.drv.list_instances())

    def test_unreachable_becomes_hypervisor_unavailable(self):
        self.flags(api_socket="/nonexistent/api.sock", request_timeout=0.3,
                   group="powervmd")
        drv = pvm_driver.PowerVMDriver(fake.FakeVirtAPI())
        self.assertRaises(exception.HypervisorUnavailable, drv.power_off, self.inst)
        self.assertRaises(exception.HypervisorUnavailable, drv.get_info, self.inst)
        self.assertRaises(exception.HypervisorUnavailable, drv.list_instances)

    def test_unsupported_methods(self):
        for name in pvm_driver.UNSUPPORTED:
            self.assertRaises(NotImplementedError, getattr(self.drv, name), 1, 2)
        caps = self.drv.capabilities
        self.assertTrue(caps["supports_attach_interface"])
        self.assertTrue(caps["supports_image_type_raw"])
        for k in ("supports_multiattach", "supports_extend_volume", "supports_evacuate",
                  "supports_device_tagging", "supports_image_type_qcow2"):
            self.assertFalse(caps[k], k)


class Inst:
    def __init__(self, uuid, ps, task_state=None):
        self.uuid, self.power_state, self.task_state = uuid, ps, task_state


class TestEventOrdering(test.NoDBTestCase):
    def setUp(self):
        super().setUp()
        self.now = 100.0
        self.states = {}
        self.nova = {}
        self.emitted = []
        self.reads = []

        def get_state(p):
            self.reads.append(p)
            return self.states.get(p)
        self.life = pvm_events.LifecycleEvents(
            15, get_state, lambda p: self.nova.get(p), self.emitted.append,
            clock=lambda: self.now)

    def test_reboot_stop_then_start_reaches_nova_as_nothing(self):
        self.nova[PART] = Inst(UUID, power_state.RUNNING)
        self.states[PART] = "not activated"
        self.life.partition_changed(PART)  # the reboot's stop
        self.now += 5
        self.states[PART] = "running"
        self.life.partition_changed(PART)  # its start, 5 s later: replaces the stop
        self.now += 14
        self.assertEqual(0, self.life.fire_due(), "still within the delay of the start")
        self.now += 2
        self.life.fire_due()
        self.assertEqual([], self.emitted)
        self.assertEqual(1, self.life.replaced)
        self.assertEqual([PART], self.reads, "one state read, at the end of the delay")

    def test_state_read_at_fire_time_not_event_time(self):
        self.nova[PART] = Inst(UUID, power_state.RUNNING)
        self.states[PART] = "running"
        self.life.partition_changed(PART)
        self.states[PART] = "not activated"  # changed meanwhile, event lost or late
        self.now += 15
        self.assertEqual(1, self.life.fire_due())
        self.assertEqual(virtevent.EVENT_LIFECYCLE_STOPPED, self.emitted[0].transition)
        self.assertEqual(UUID, self.emitted[0].uuid)

    def test_started_and_task_state_guard(self):
        self.nova[PART] = Inst(UUID, power_state.SHUTDOWN, task_states.POWERING_ON)
        self.states[PART] = "running"
        self.life.partition_changed(PART)
        self.now += 15
        self.life.fire_due()
        self.assertEqual([], self.emitted, "nova is powering it on itself")
        self.nova[PART].task_state = None
        self.life.partition_changed(PART)
        self.now += 15
        self.life.fire_due()
        self.assertEqual([virtevent.EVENT_LIFECYCLE_STARTED],
                         [e.transition for e in self.emitted])

    def test_gone_and_unknown_partitions(self):
        self.life.partition_changed(PART)  # no state: deleted
        other = "2" + PART[1:]
        self.states[other] = "running"
        self.life.partition_changed(other)  # not a nova instance
        self.now += 15
        self.assertEqual(0, self.life.fire_due())
        self.assertEqual({}, self.life.pending)

    def test_translate(self):
        t = pvm_events.translate
        self.assertEqual(virtevent.EVENT_LIFECYCLE_SUSPENDED,
                         t("suspended", power_state.RUNNING))
        self.assertEqual(virtevent.EVENT_LIFECYCLE_RESUMED,
                         t("resuming", power_state.SUSPENDED))
        self.assertIsNone(t("running", power_state.RUNNING))
        self.assertIsNone(t("shutting down", power_state.RUNNING))
        self.assertIsNone(t("not activated", power_state.SHUTDOWN))

    def test_candidates(self):
        self.assertEqual([UUID.replace("9", "1", 1), UUID],
                         pvm_events.candidate_instance_uuids(PART))
        self.assertEqual(PART, pvm_events.partition_uuid_of(UUID))

    def test_listener_handles_answers_and_missed(self):
        class C:
            def instances(self):
                return [{"uuid": "AAAAAAAA-0000-4000-8000-000000000001",
                         "partition_uuid": "2AAAAAAA-0000-4000-8000-000000000001"}]
        ln = pvm_events.EventListener(C(), self.life, lambda: None, 30, 5)
        ln.handle({"events": [{"seq": 1, "type": "partition", "partition_uuid": PART,
                               "event": "MODIFY_URI", "detail": "PartitionState",
                               "state": "running"}], "last": 1, "missed": False})
        self.assertEqual(1, ln.after)
        self.assertIn(PART, self.life.pending)
        ln.handle({"events": [], "last": 1, "missed": True})  # powervmd restarted
        self.assertEqual(1, ln.resyncs)
        self.assertIn("2AAAAAAA-0000-4000-8000-000000000001", self.life.pending)


class TestHostEnabled(ShimTestCase):
    def _service(self, disabled, reason):
        svc = mock.MagicMock()
        svc.configure_mock(disabled=disabled, disabled_reason=reason)
        return svc

    def test_auto_disable_and_enable(self):
        self.drv._host = "myhost"
        svc = self._service(False, None)
        with mock.patch.object(objects.Service, "get_by_compute_host", return_value=svc):
            self.daemon.healthy = False
            self.drv._check_health()
            self.assertTrue(svc.disabled)
            self.assertTrue(svc.disabled_reason.startswith("AUTO: powervmd is not ready"))
            self.daemon.healthy = True
            self.drv._check_health()
            self.assertFalse(svc.disabled)
            self.assertIsNone(svc.disabled_reason)
            self.assertEqual(2, self.drv.health["changes"])

    def test_managed_system_down_disables(self):
        self.drv._host = "myhost"
        svc = self._service(False, None)
        self.daemon.host["state"] = "no connection"
        self.daemon.host["name"] = "sim-ms"
        with mock.patch.object(objects.Service, "get_by_compute_host", return_value=svc):
            self.drv._check_health()
        self.assertTrue(svc.disabled)
        self.assertIn("sim-ms is no connection", svc.disabled_reason)

    def test_manual_disable_is_kept(self):
        self.drv._host = "myhost"
        svc = self._service(True, "maintenance by the operator")
        with mock.patch.object(objects.Service, "get_by_compute_host", return_value=svc):
            self.drv._set_health(False, "powervmd is unreachable")
            self.drv._set_health(True, None)
        self.assertTrue(svc.disabled)
        self.assertEqual("maintenance by the operator", svc.disabled_reason)
        svc.save.assert_not_called()

    def test_unreachable_daemon_disables_at_init_host(self):
        self.flags(api_socket="/nonexistent/api.sock", request_timeout=0.3,
                   health_interval=3600, group="powervmd")
        drv = pvm_driver.PowerVMDriver(fake.FakeVirtAPI())
        svc = self._service(False, None)
        with mock.patch.object(objects.Service, "get_by_compute_host", return_value=svc), \
                mock.patch.object(objects.InstanceList, "get_by_host", return_value=[]):
            drv.init_host("myhost")
            drv.cleanup_host("myhost")
        self.assertTrue(svc.disabled)
        self.assertIn("AUTO: powervmd is unreachable", svc.disabled_reason)

    def test_reconcile_when_powervmd_comes_up_after_init_host(self):
        self.daemon.healthy = False
        svc = self._service(False, None)
        insts = [fake_instance.fake_instance_obj(self.ctxt, uuid=UUID, vm_state="active",
                                                 task_state=None)]
        with mock.patch.object(objects.Service, "get_by_compute_host", return_value=svc), \
                mock.patch.object(objects.InstanceList, "get_by_host", return_value=insts):
            self.flags(health_interval=3600, group="powervmd")
            self.drv.init_host("myhost")
            self.drv.cleanup_host("myhost")
            self.assertEqual([], self.fake.of("POST", "/v1/reconcile"))
            self.assertTrue(svc.disabled)
            self.daemon.healthy = True
            self.drv._check_health()
            self.drv._check_health()
        self.assertEqual(1, len(self.fake.of("POST", "/v1/reconcile")))
        self.assertFalse(svc.disabled)

    def test_init_host_reconciles_and_checks_node(self):
        insts = [fake_instance.fake_instance_obj(self.ctxt, uuid=UUID, vm_state="building",
                                                 task_state="spawning")]
        cn = mock.Mock(hypervisor_hostname="sim-ms")
        with mock.patch.object(objects.InstanceList, "get_by_host", return_value=insts), \
                mock.patch.object(objects.ComputeNodeList, "get_all_by_host",
                                  return_value=[cn]), \
                mock.patch.object(objects.Service, "get_by_compute_host",
                                  side_effect=exception.ComputeHostNotFound(host="h")):
            self.drv.init_host("myhost")
            self.drv.cleanup_host("myhost")
        rec = self.fake.of("POST", "/v1/reconcile")
        self.assertEqual([{"uuid": UUID, "vm_state": "building", "task_state": "spawning"}],
                         rec[0].json["instances"])
        cn.hypervisor_hostname = "another-system"
        with mock.patch.object(objects.ComputeNodeList, "get_all_by_host",
                               return_value=[cn]):
            e = self.assertRaises(exception.InvalidConfiguration, self.drv.init_host,
                                  "myhost")
        self.assertIn("another-system", str(e))


class TestResources(ShimTestCase):
    def test_available_resource_and_inventory(self):
        res = self.drv.get_available_resource("sim-ms")
        self.assertEqual((400, 524288, "phyp", 7), (res["vcpus"], res["memory_mb"],
                                                     res["hypervisor_type"],
                                                     res["hypervisor_version"]))
        self.assertEqual(["sim-ms"], self.drv.get_available_nodes())
        tree = mock.Mock()
        tree.data.return_value.inventory = {}
        self.flags(reserved_host_memory_mb=512, cpu_allocation_ratio=2.0)
        self.drv.update_provider_tree(tree, "sim-ms")
        inv = tree.update_inventory.call_args[0][1]
        self.assertEqual(20480, inv["MEMORY_MB"]["reserved"], "powervmd's is larger")
        self.assertEqual(2.0, inv["VCPU"]["allocation_ratio"])
        self.assertNotIn("DISK_GB", inv)
        self.flags(reserved_host_memory_mb=40000)
        self.drv.update_provider_tree(tree, "sim-ms")
        self.assertEqual(40000, tree.update_inventory.call_args[0][1]["MEMORY_MB"]["reserved"])


class TestSpawn(ShimTestCase):
    """The spawn flow before powervmd's spawn exists: what the shim sends."""

    def setUp(self):
        super().setUp()
        self.image_service = self.useFixture(shimenv_glance(self))
        self.data = bytes(range(256)) * 4096
        img = self.image_service.images["cedef40a-ed67-4d10-800e-17455edce175"]
        img.update(disk_format="raw", container_format="bare", size=len(self.data),
                   os_hash_algo="sha512",
                   os_hash_value=hashlib.sha512(self.data).hexdigest())
        self.image_service._imagedata[img["id"]] = self.data
        self.image_meta = objects.ImageMeta.from_dict(
            {k: v for k, v in img.items() if k not in ("os_hash_algo", "os_hash_value")})
        self.flavor = objects.Flavor(name="m1", flavorid="1", memory_mb=2048, vcpus=2,
                                     root_gb=10, ephemeral_gb=0, swap=0,
                                     extra_specs={"powervm:proc_units": "0.2"})
        self.inst.flavor = self.flavor
        self.inst.config_drive = ""
        self.inst.launched_at = None
        self.inst.system_metadata = {}
        self.nwinfo = test_utils.get_test_network_info()

    def test_spawn_uploads_image_and_opens_the_gate(self):
        self.drv.spawn(self.ctxt, self.inst, self.image_meta, [], "pw", {},
                       network_info=self.nwinfo)
        up = self.daemon.uploads[self.image_meta.id]
        self.assertEqual(self.data, up.body)
        self.assertEqual("sha512", up.headers["os_hash_algo"])
        self.assertEqual(hashlib.sha512(self.data).hexdigest(), up.headers["os_hash_value"])
        self.assertEqual(str(len(self.data)), up.headers["Content-Length"])
        op = self.daemon.ops[1]
        p = op["params"]
        self.assertEqual("spawn", op["type"])
        self.assertEqual(sorted(["instance", "flavor", "image_meta", "network_info",
                                 "block_device_info", "config_drive",
                                 "network_plugged_timeout", "network_plugged_fatal"]),
                         sorted(p))
        self.assertEqual({"name": "m1", "flavorid": "1", "memory_mb": 2048, "vcpus": 2,
                          "root_gb": 10, "ephemeral_gb": 0, "swap": 0,
                          "extra_specs": {"powervm:proc_units": "0.2"}}, p["flavor"])
        self.assertEqual("raw", p["image_meta"]["disk_format"])
        vif = p["network_info"][0]
        self.assertEqual(("ovs", 100), (vif["type"], vif["details"]["vlan"]))
        self.assertEqual(360, p["network_plugged_timeout"])
        self.assertFalse(p["config_drive"])
        self.assertEqual([(1, {"name": "network_plugged", "value": True})],
                         self.daemon.signals)
        # a second spawn finds the image cached
        self.daemon.uploads.clear()
        self.drv.ensure_image(self.ctxt, self.image_meta)
        self.assertEqual({}, self.daemon.uploads)

    def test_concurrent_upload_of_the_same_image_is_waited_for(self):
        busy = []

        def handler(req):
            if req.method == "PUT" and not busy:
                busy.append(req)  # another spawn streams this image right now
                return 409, {"error": {"code": "conflict", "message": "upload running"}}
            if req.method == "GET" and req.path.startswith("/v1/images/") and busy:
                self.daemon.images.add(self.image_meta.id)  # the other upload ended
            return self.daemon(req)
        self.fake.handler = handler
        self.assertEqual("cached", self.drv.ensure_image(self.ctxt, self.image_meta))
        self.assertEqual(1, len(self.fake.of("PUT", "/v1/images/")))
        self.assertEqual("%g" % 1.0, busy[0].query["wait"])

    def test_image_cached_with_another_digest_fails(self):
        self.fake.handler = lambda r: (404, {"error": {"code": "not_found", "message": "x"}}) \
            if r.method == "GET" else (409, {"error": {"code": "conflict", "message": "other",
                                                       "sha256": "ab" * 32}})
        e = self.assertRaises(exception.InstanceDeployFailure, self.drv.ensure_image,
                              self.ctxt, self.image_meta)
        self.assertIn("other", str(e))

    def test_non_raw_image_refused(self):
        self.image_meta.disk_format = "qcow2"
        self.assertRaises(exception.ImageUnacceptable, self.drv.spawn, self.ctxt,
                          self.inst, self.image_meta, [], None, {})
        self.assertEqual({}, self.daemon.ops)

    def test_config_drive_built_and_streamed(self):
        ctxt = test_utils.get_test_admin_context()
        inst = test_utils.get_test_instance(ctxt, obj=True)
        inst.config_drive = "True"
        inst.metadata = {"role": "test"}
        inst.hostname = "vm1"
        inst.save()
        written = {}

        def make_drive(cdb, path):
            files = dict(cdb.mdfiles)
            written.update(files)
            with open(path, "wb") as f:
                f.write(b"ISO" + json.dumps(sorted(files)).encode())
        with mock.patch("nova.virt.configdrive.ConfigDriveBuilder.make_drive",
                        make_drive), \
                mock.patch("nova.network.security_group_api."
                           "get_instance_security_groups", return_value=[]):
            self.drv.spawn(ctxt, inst, self.image_meta, [("/etc/motd", b"hi")], "pw", {},
                           network_info=fake_network.fake_get_instance_nw_info(self))
        up = self.daemon.uploads["/v1/config-drives/%s" % inst.uuid]
        self.assertEqual(b"ISO" + json.dumps(sorted(written)).encode(), up.body)
        self.assertEqual(str(len(up.body)), up.headers["Content-Length"])
        md = json.loads(written["openstack/latest/meta_data.json"])
        self.assertEqual(inst.uuid, md["uuid"])
        self.assertEqual("pw", md["admin_pass"])
        self.assertEqual({"role": "test"}, md["meta"])
        self.assertIn("openstack/latest/network_data.json", written)
        self.assertTrue(self.daemon.ops[1]["params"]["config_drive"])
        self.assertEqual(4, self.daemon.ops[1]["params"]["flavor"]["vcpus"])

    def test_vif_timeout_fatal_cancels_spawn(self):
        self.flags(vif_plugging_is_fatal=True, vif_plugging_timeout=1)

        class TimeoutVirtAPI(fake.FakeVirtAPI):
            def wait_for_instance_event(self, instance, events, deadline=300,
                                        error_callback=None):
                return _raising_cm(eventlet.timeout.Timeout(deadline), events)
        self.drv.virtapi = TimeoutVirtAPI()
        self.daemon.polls = 10 ** 6
        self.assertRaises(exception.VirtualInterfaceCreateException, self.drv.spawn,
                          self.ctxt, self.inst, self.image_meta, [], None, {},
                          network_info=self.nwinfo)
        self.assertEqual([1], self.daemon.cancels)
        self.assertEqual([], self.daemon.signals)

    def test_vif_timeout_not_fatal_opens_gate(self):
        self.flags(vif_plugging_is_fatal=False, vif_plugging_timeout=1)

        class TimeoutVirtAPI(fake.FakeVirtAPI):
            def wait_for_instance_event(self, instance, events, deadline=300,
                                        error_callback=None):
                return _raising_cm(eventlet.timeout.Timeout(deadline), events)
        self.drv.virtapi = TimeoutVirtAPI()
        self.drv.spawn(self.ctxt, self.inst, self.image_meta, [], None, {},
                       network_info=self.nwinfo)
        self.assertEqual(1, len(self.daemon.signals))
        self.assertFalse(self.daemon.ops[1]["params"]["network_plugged_fatal"])

    def test_waits_for_the_right_events(self):
        seen = []

        class RecordingVirtAPI(fake.FakeVirtAPI):
            def wait_for_instance_event(self, instance, events, deadline=300,
                                        error_callback=None):
                seen.append((list(events), deadline))
                return super().wait_for_instance_event(instance, events, deadline,
                                                       error_callback)
        self.drv.virtapi = RecordingVirtAPI()
        nw = test_utils.get_test_network_info(2)
        nw[1]["active"] = True
        self.drv.spawn(self.ctxt, self.inst, self.image_meta, [], None, {},
                       network_info=nw)
        self.assertEqual([([("network-vif-plugged", nw[0]["id"])], 300)], seen)
        self.flags(vif_plugging_timeout=0)
        self.drv.spawn(nova_context.RequestContext("u", "p", request_id="req-2"),
                       self.inst, self.image_meta, [], None, {}, network_info=nw)
        self.assertEqual([], seen[1][0])
        self.assertEqual(0, self.daemon.ops[2]["params"]["network_plugged_timeout"])

    def test_spawn_failure_is_deploy_failure(self):
        self.daemon.outcome = lambda t, p: ("failed", {}, "no room in volume group",
                                            "PVM_ENOSPC")
        e = self.assertRaises(exception.InstanceDeployFailure, self.drv.spawn, self.ctxt,
                              self.inst, self.image_meta, [], None, {},
                              network_info=self.nwinfo)
        self.assertIn("no room in volume group", str(e))


class _raising_cm:
    """A wait_for_instance_event whose wait times out on exit."""

    def __init__(self, exc, events):
        self.exc = exc

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if et is None:
            raise self.exc
        return False


def shimenv_glance(tc):
    from nova.tests import fixtures as nova_fixtures
    return nova_fixtures.GlanceFixture(tc)


# keep the module importable by stestr's discovery even if threading is green
assert threading and time
