"""events: powervmd's /v1/events as nova lifecycle events, and the health watch.

One green thread (EventListener.run) long-polls GET /v1/events. A partition event does
not become a nova event at once: it is held for `delay` seconds (event_delay, nova-powervm's
15 s), and a later event of the same partition replaces it, so the stop and start of a
reboot can never reach nova in the wrong order. When the delay ends, the partition's state
is read again (GET /v1/instances/{uuid}) and compared with what nova has recorded
(instance.power_state); an event is emitted only for a real change, and none while nova
itself is working on the instance (a task_state in NO_EVENT_TASK_STATES), as nova-powervm
did. `missed: true` (ring overflow, powervmd restart) schedules a check of every partition.

The same loop runs the health check (driver._check_health) every `health_interval`
seconds, so one thread does both and never blocks the compute service (its sockets are
green).

The partition UUID in events is derived from the instance UUID (top bit of the first hex
digit cleared); the way back has two candidates, resolved against nova's database and
cached.
"""
import logging
import time

from nova.compute import power_state
from nova.compute import task_states
from nova.virt import event as virtevent

from . import client as pvm_client

LOG = logging.getLogger(__name__)

NO_EVENT_TASK_STATES = frozenset([
    task_states.SPAWNING, task_states.RESIZE_MIGRATING, task_states.RESIZE_REVERTING,
    task_states.REBOOTING, task_states.REBOOTING_HARD, task_states.REBOOT_STARTED,
    task_states.REBOOT_STARTED_HARD, task_states.REBOOT_PENDING,
    task_states.REBOOT_PENDING_HARD, task_states.PAUSING, task_states.UNPAUSING,
    task_states.SUSPENDING, task_states.RESUMING, task_states.POWERING_OFF,
    task_states.POWERING_ON, task_states.RESCUING, task_states.UNRESCUING,
    task_states.REBUILDING, task_states.REBUILD_SPAWNING, task_states.MIGRATING,
    task_states.DELETING, task_states.SOFT_DELETING, task_states.RESTORING,
    task_states.SHELVING, task_states.SHELVING_OFFLOADING, task_states.UNSHELVING,
])


def candidate_instance_uuids(partition_uuid):
    """The two nova instance UUIDs a partition UUID can come from (lower case)."""
    u = partition_uuid.lower()
    d = int(u[0], 16) & 7
    return ["%x" % d + u[1:], "%x" % (d | 8) + u[1:]]


def partition_uuid_of(instance_uuid):
    u = instance_uuid.upper()
    return "0123456789ABCDEF"[int(u[0], 16) & 7] + u[1:]


def translate(state, nova_power_state):
    """The lifecycle transition a partition state means to nova, or None (nova-powervm's
    translate_event): running -> STARTED, not activated -> STOPPED, suspended ->
    SUSPENDED, resuming -> RESUMED, each only when nova records something else."""
    s = (state or "").lower()
    if s == "running" and nova_power_state != power_state.RUNNING:
        return virtevent.EVENT_LIFECYCLE_STARTED
    if s == "not activated" and nova_power_state != power_state.SHUTDOWN:
        return virtevent.EVENT_LIFECYCLE_STOPPED
    if s == "suspended" and nova_power_state != power_state.SUSPENDED:
        return virtevent.EVENT_LIFECYCLE_SUSPENDED
    if s == "resuming" and nova_power_state != power_state.RUNNING:
        return virtevent.EVENT_LIFECYCLE_RESUMED
    return None


class LifecycleEvents:
    """The delay-and-replace logic. get_state(partition_uuid) -> partition state or None
    (gone); get_instance(partition_uuid) -> a nova instance (uuid, power_state,
    task_state) or None; emit(event). Not thread-safe: one green thread drives it."""

    def __init__(self, delay, get_state, get_instance, emit, clock=None):
        self.delay = float(delay)
        self._get_state = get_state
        self._get_instance = get_instance
        self._emit = emit
        self._clock = clock or (lambda: time.monotonic())
        self.pending = {}  # partition UUID (upper case) -> due time
        self.emitted = 0
        self.replaced = 0

    def partition_changed(self, partition_uuid):
        p = partition_uuid.upper()
        if p in self.pending:
            self.replaced += 1
        self.pending[p] = self._clock() + self.delay

    def next_due(self):
        return min(self.pending.values()) if self.pending else None

    def fire_due(self):
        """Emits what is due; returns how many nova events were emitted."""
        now = self._clock()
        n = 0
        for p in sorted(u for u, due in self.pending.items() if due <= now):
            del self.pending[p]
            try:
                if self._fire(p):
                    n += 1
            except Exception:
                LOG.exception("powervmd: lifecycle event of partition %s not handled", p)
        return n

    def _fire(self, p):
        state = self._get_state(p)
        if state is None:
            LOG.debug("powervmd: partition %s is gone: no lifecycle event", p)
            return False
        inst = self._get_instance(p)
        if inst is None:
            LOG.debug("powervmd: partition %s is no nova instance: no lifecycle event", p)
            return False
        if inst.task_state in NO_EVENT_TASK_STATES:
            LOG.debug("powervmd: instance %s has task_state %s: no lifecycle event",
                      inst.uuid, inst.task_state)
            return False
        transition = translate(state, inst.power_state)
        if transition is None:
            return False
        LOG.info("powervmd: partition of instance %s is now %s: lifecycle event %s",
                 inst.uuid, state, transition)
        self._emit(virtevent.LifecycleEvent(inst.uuid, transition))
        self.emitted += 1
        return True


class EventListener:
    """The loop: long-poll /v1/events, feed LifecycleEvents, fire what is due, run the
    health check every health_interval. stop() ends it at its next wake-up."""

    def __init__(self, client, lifecycle, health_check, health_interval, long_poll,
                 clock=None, sleep=None):
        self._client = client
        self.lifecycle = lifecycle
        self._health_check = health_check
        self._health_interval = float(health_interval)
        self._long_poll = float(long_poll)
        # looked up at call time: time.sleep is eventlet's green one once nova-compute
        # has monkey-patched, whenever this module was imported
        self._clock = clock or (lambda: time.monotonic())
        self._sleep = sleep or (lambda s: time.sleep(s))
        self._stopped = False
        self.after = 0
        self.resyncs = 0
        self.errors = 0

    def stop(self):
        self._stopped = True

    @property
    def stopped(self):
        return self._stopped

    def handle(self, answer):
        """One /v1/events answer."""
        if answer.get("missed") and self.after:
            self.resync()
        for ev in answer.get("events") or []:
            t = ev.get("type")
            if t == "partition" and ev.get("partition_uuid"):
                detail = ev.get("detail") or ""
                if (ev.get("event") in ("DELETE_URI",) or "PartitionState" in detail or
                        ev.get("state") is not None):
                    self.lifecycle.partition_changed(ev["partition_uuid"])
            elif t == "resync":
                self.resync()
        self.after = answer.get("last", self.after) or self.after

    def resync(self):
        """Every partition gets a (delayed) check against nova's view."""
        self.resyncs += 1
        try:
            for inst in self._client.instances():
                self.lifecycle.partition_changed(inst.get("partition_uuid") or inst["uuid"])
        except (pvm_client.PowerVMDUnreachable, pvm_client.ApiError) as e:
            LOG.warning("powervmd: re-reading instances after missed events: %s", e)

    def run(self):
        next_health = self._clock()
        delay = 0.5
        while not self._stopped:
            now = self._clock()
            if now >= next_health:
                try:
                    self._health_check()
                except Exception:
                    LOG.exception("powervmd: health check failed")
                next_health = self._clock() + self._health_interval
            self.lifecycle.fire_due()
            if self._stopped:
                break
            wake = next_health
            due = self.lifecycle.next_due()
            if due is not None:
                wake = min(wake, due)
            wait = max(0.0, min(self._long_poll, wake - self._clock()))
            try:
                if wait > 0:
                    self.handle(self._client.events(self.after, wait=wait))
                else:
                    self.handle(self._client.events(self.after))
                delay = 0.5
            except (pvm_client.PowerVMDUnreachable, pvm_client.ApiError) as e:
                self.errors += 1
                LOG.debug("powervmd: reading events: %s", e)
                self._sleep(min(delay, max(0.05, wake - self._clock())))
                delay = min(delay * 2, 10.0)
            except Exception:
                self.errors += 1
                LOG.exception("powervmd: event loop")
                self._sleep(min(delay, 10.0))
                delay = min(delay * 2, 10.0)
